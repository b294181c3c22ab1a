"""The settings module (interest_decay/config.py) is the one source of every default: infra/env.sh agrees
with it, docs/configuration.md's table is generated from it, and a bad value is a readable error."""

import re

import pytest
from pydantic import ValidationError

from interest_decay import config

ENV_SH = config.PROJECT_ROOT / "infra" / "env.sh"
DERIVED = {
    "REPORTS_DIR": config.reports_dir,
    "EVENTS_DIR": config.events_dir,
    "BENTOML_HOME": config.bentoml_home,
    "FEAST_REGISTRY_PATH": config.feast_registry_path,
}


@pytest.fixture
def clean_env(monkeypatch):
    for name in config.Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


def shell_defaults() -> dict[str, str]:
    """NAME -> default of every `export NAME="${NAME:-default}"` line, with the shell's paths filled in."""
    found = dict(re.findall(r'^export (\w+)="\$\{\1:-([^}]*)\}"', ENV_SH.read_text(), re.M))
    state = str(config.PROJECT_ROOT / ".state")
    return {
        k: v.replace("$DECAY_STATE_DIR", state).replace("$PROJECT_ROOT", str(config.PROJECT_ROOT))
        for k, v in found.items()
    }


def test_env_sh_gives_the_settings_defaults(clean_env):
    shell, settings = shell_defaults(), config.get()
    checked = 0
    for name in config.Settings.model_fields:
        variable = name.upper()
        if variable not in shell or variable == "PGPASSWORD":
            continue
        want = DERIVED[variable]() if variable in DERIVED else getattr(settings, name)
        assert shell[variable] == str(want), variable
        checked += 1
    assert checked >= 10


def test_the_configuration_docs_are_generated_from_the_settings():
    text = config.DOCS.read_text()
    assert config.documented(text) == text, "run: python -m interest_decay.config --write-docs"
    for name in config.Settings.model_fields:
        assert f"`{name.upper()}`" in text


def test_settings_follow_the_environment_and_keep_secrets_out_of_reprs(clean_env):
    clean_env.setenv("PGPORT", "6000")
    clean_env.setenv("PGPASSWORD", "s3cret-value")
    clean_env.setenv("DECAY_STATE_DIR", "/tmp/elsewhere")
    assert "port=6000" in config.pg_conninfo() and "password=s3cret-value" in config.pg_conninfo()
    assert str(config.reports_dir()) == "/tmp/elsewhere/reports"
    assert "s3cret-value" not in repr(config.get())


def test_a_bad_value_names_the_variable(clean_env):
    clean_env.setenv("PGPORT", "five")
    with pytest.raises(ValidationError, match="pgport"):
        config.get()
