#!/usr/bin/env bash
# Debian packages some tests need, installed with apt when missing (needs root; ~1 min the first time):
#   chromium + chromium-driver  the browser test of the Airflow UI (tests/e2e/test_ui_trigger_forms.py, selenium)
#   nginx                       make serve REPLICAS=N, the balancer in front of the replicas (tests/e2e/test_replicas.py)
set -euo pipefail
missing=()
[ -x /usr/bin/chromedriver ] || missing+=(chromium chromium-driver)
command -v nginx > /dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "missing Debian packages, and installing them needs root: run  sudo apt-get install -y ${missing[*]}"
  exit 1
fi
echo "installing ${missing[*]} (Debian packages) for the tests"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q "${missing[@]}" > /dev/null 2>&1 ||
  { apt-get update -q > /dev/null 2>&1 && apt-get install -y -q "${missing[@]}" > /dev/null; }
[ -x /usr/bin/chromedriver ] || { echo "chromium-driver installed no /usr/bin/chromedriver"; exit 1; }
