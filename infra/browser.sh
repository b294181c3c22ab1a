#!/usr/bin/env bash
# Headless Chromium and its WebDriver from Debian, for the browser tests of the Airflow UI
# (tests/e2e/test_ui_trigger_forms.py drives them with selenium from the lock).
# Installs chromium and chromium-driver with apt when /usr/bin/chromedriver is missing (needs root, ~1 min).
set -euo pipefail
driver=/usr/bin/chromedriver
if [ -x "$driver" ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "no $driver, and installing it needs root: run  sudo apt-get install -y chromium chromium-driver"
  exit 1
fi
echo "installing chromium and chromium-driver (Debian packages) for the browser tests"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q chromium chromium-driver > /dev/null 2>&1 ||
  { apt-get update -q > /dev/null 2>&1 && apt-get install -y -q chromium chromium-driver > /dev/null; }
test -x "$driver" || { echo "chromium-driver installed no $driver"; exit 1; }
