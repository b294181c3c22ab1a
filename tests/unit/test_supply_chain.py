"""What is installed is pinned with hashes: the venv and the bento both install infra/requirements.lock, where
every package has an exact version and its files' sha256."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "infra" / "requirements.lock"


def test_every_locked_package_has_an_exact_version_and_hashes():
    entries = re.split(
        r"\n(?=[A-Za-z0-9])", "\n".join(line for line in LOCK.read_text().splitlines() if not line.startswith("#"))
    )
    entries = [e for e in entries if e.strip()]
    assert len(entries) > 100
    for entry in entries:
        assert re.match(r"^[A-Za-z0-9_.\-\[\],]+==[^\s\\]+", entry), entry.splitlines()[0]
        assert "--hash=sha256:" in entry, entry.splitlines()[0]


def test_the_venv_and_the_bento_install_the_lock_with_hashes_required():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"pip install [^\n]*--require-hashes -r infra/requirements\.lock", makefile)
    bentofile = yaml.safe_load((ROOT / "serving" / "bentofile.yaml").read_text())
    assert bentofile["python"]["requirements_txt"] == "infra/requirements.lock"
