"""docker-compose.yaml and the Dockerfile, checked without Docker (it cannot run on this machine).

The file is read as compose reads it (YAML anchors and merge keys, ``${VAR}`` interpolation from
``.env.example``), then checked the way a failed ``docker compose up`` would show it: every service has
a command the installed Airflow, MLflow or Celery accepts, every volume and network it names exists,
health checks and start order hold, the settings holdcast reads are set to values it accepts, no
secret is written down, and the image installs the project as ``make test`` does.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from include import config

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"

AIRFLOW_ROLES = {
    "airflow-init": None,
    "airflow-apiserver": ["api-server"],
    "airflow-scheduler": ["scheduler"],
    "airflow-dag-processor": ["dag-processor"],
    "airflow-triggerer": ["triggerer"],
    "airflow-worker": ["celery", "worker"],
}
LONG_RUNNING = {"postgres", "redis", "mlflow", *AIRFLOW_ROLES} - {"airflow-init"}
_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")
_SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN|_KEY$")


def _env_example() -> dict[str, str]:
    """``.env.example`` as compose reads a .env file: NAME=value, optional quotes, # comments."""
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep, f".env.example: {line!r} is not NAME=value"
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name.strip()] = value
    return values


def _interpolate(value: str, env: dict[str, str]) -> str:
    def substitute(match: re.Match) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        current = env.get(name)
        if op in (":-", "-"):
            return current if current else (arg or "")
        if op in (":?", "?"):
            assert current, f"required variable {name} is unset: {arg}"
        return current or ""

    return _VAR.sub(substitute, value.replace("$$", "\0")).replace("\0", "$")


def _walk_strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _walk_strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk_strings(value)


def _resolve(node, env):
    if isinstance(node, str):
        return _interpolate(node, env)
    if isinstance(node, dict):
        return {key: _resolve(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolve(value, env) for value in node]
    return node


@pytest.fixture(scope="module")
def raw():
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def compose(raw):
    """The compose model with .env.example's values substituted, as `docker compose config` shows it."""
    return _resolve(raw, _env_example())


@pytest.fixture(scope="module")
def services(compose):
    return compose["services"]


def _command(service: dict) -> list[str]:
    command = service.get("command")
    return shlex.split(command) if isinstance(command, str) else list(command or [])


def test_every_part_of_the_deployment_is_there(services):
    assert set(services) == {"postgres", "redis", "mlflow", *AIRFLOW_ROLES}
    for name in AIRFLOW_ROLES:
        assert services[name]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name


def test_images_are_pinned_and_holdcast_image_is_the_project_version(services):
    project_version = _pyproject()["project"]["version"]
    for name, service in services.items():
        image = service["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and re.fullmatch(r"v?\d+(\.\d+)+(-[a-z0-9.]+)?", tag), (
            f"{name}: image {image!r} is not pinned"
        )
        if "build" in service:
            assert service["build"] == ".", name
            assert image == f"holdcast:{project_version}", (
                f"{name}: built image must be tagged {project_version}"
            )


def _airflow_parse(commands: list[list[str]]) -> subprocess.CompletedProcess:
    """Parse each airflow command line with the installed Airflow's own CLI parser (nothing runs)."""
    script = (
        "import json, sys\n"
        "from airflow.cli.cli_parser import get_parser\n"
        "for argv in json.loads(sys.argv[1]):\n"
        "    get_parser().parse_args(argv)\n"
    )
    env = {**os.environ, "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor", "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    return subprocess.run(
        [sys.executable, "-c", script, json.dumps(commands)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_airflow_command_is_one_the_installed_airflow_accepts(services, tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    commands = []
    for name, expected in AIRFLOW_ROLES.items():
        command = _command(services[name])
        if expected is None:
            continue
        assert command[0] == "airflow" and command[1 : 1 + len(expected)] == expected, (name, command)
        commands.append(command[1:])
    for service in services.values():
        test = service.get("healthcheck", {}).get("test", [])
        if test[:1] == ["CMD-SHELL"] and test[1].startswith("airflow "):
            commands.append(shlex.split(test[1].replace('"${HOSTNAME}"', "host"))[1:])
    proc = _airflow_parse(commands)
    assert proc.returncode == 0, f"{commands}\n{proc.stderr[-3000:]}"
    # The parser must also refuse a wrong command: a check that cannot fail proves nothing.
    assert _airflow_parse([["celery", "wroker"]]).returncode != 0


def test_init_step_migrates_and_is_shipped_in_the_image(services):
    command = _command(services["airflow-init"])
    assert command[0] == "bash" and command[1].startswith("/opt/holdcast/")
    script = ROOT / command[1].removeprefix("/opt/holdcast/")
    assert script.is_file(), f"{script} is missing"
    assert "COPY --chown=airflow:0 deploy ./deploy" in DOCKERFILE.read_text()
    assert re.search(r"^airflow db migrate$", script.read_text(), re.M)
    subprocess.run(["bash", "-n", str(script)], check=True)
    assert services["airflow-init"]["restart"] == "no"


def test_mlflow_server_command_is_one_mlflow_accepts(services):
    import click
    from mlflow.cli import cli

    command = _command(services["mlflow"])
    assert command[:2] == ["mlflow", "server"]
    server = cli.commands["server"]
    ctx = server.make_context("server", command[2:])
    assert ctx.params["backend_store_uri"].startswith("postgresql+psycopg2://")
    assert ctx.params["serve_artifacts"] and ctx.params["artifacts_destination"] == "/mlartifacts"
    with pytest.raises(click.UsageError):
        server.make_context("server", ["--no-such-option"])


def test_volumes_and_networks_referenced_exist(raw, services):
    declared_volumes = set(raw.get("volumes") or {})
    declared_networks = set(raw.get("networks") or {})
    used_volumes, used_networks = set(), set()
    for name, service in services.items():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name}: bind mount {source} does not exist"
            else:
                assert source in declared_volumes, f"{name}: volume {source} is not declared"
                used_volumes.add(source)
        networks = service.get("networks") or []
        assert networks, f"{name} joins no network"
        for network in networks:
            assert network in declared_networks, f"{name}: network {network} is not declared"
            used_networks.add(network)
    assert used_volumes == declared_volumes and used_networks == declared_networks


def test_health_checks_and_start_order(services):
    for name in LONG_RUNNING:
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no health check"
    for name, service in services.items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            condition = spec["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits for {dependency}'s health"
            else:
                assert condition == "service_completed_successfully", (name, dependency, condition)
                assert services[dependency]["restart"] == "no", dependency
    for name in AIRFLOW_ROLES:
        if name != "airflow-init":
            assert (
                services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
            )
    assert services["airflow-worker"]["depends_on"]["airflow-apiserver"]["condition"] == "service_healthy"
    # Health-check programs written inline must at least be valid Python.
    for name, service in services.items():
        test = service.get("healthcheck", {}).get("test", [])
        if test[:3] == ["CMD", "python", "-c"]:
            compile(test[3], f"{name} healthcheck", "exec")
    _assert_no_cycle(services)


def _assert_no_cycle(services):
    done, visiting = set(), set()

    def visit(name):
        assert name not in visiting, f"depends_on cycle through {name}"
        if name in done:
            return
        visiting.add(name)
        for dependency in services[name].get("depends_on") or {}:
            visit(dependency)
        visiting.discard(name)
        done.add(name)

    for name in services:
        visit(name)


def test_workers_scale(services):
    worker = services["airflow-worker"]
    assert "container_name" not in worker and "ports" not in worker and "hostname" not in worker


def test_every_setting_holdcast_reads_is_set_to_a_value_it_accepts(services, monkeypatch):
    for name in AIRFLOW_ROLES:
        env = services[name]["environment"]
        missing = [s.name for s in config.ALL_SETTINGS if s.name not in env]
        assert not missing, f"{name} does not set {missing}"
        assert f"AIRFLOW_CONN_{env['HOLDCAST_ERP_CONN_ID'].upper()}" in env, name
    env = services["airflow-worker"]["environment"]
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for setting in config.ALL_SETTINGS:
        setting.get()  # raises SettingError naming the variable when compose's value is not usable
    policy = config.HOLDCAST_POLICY_FILE.get()
    assert policy.is_relative_to("/opt/holdcast") and (ROOT / policy.relative_to("/opt/holdcast")).is_file()
    assert str(config.HOLDCAST_LAKE_DIR.get()).startswith(env["HOLDCAST_HOME"])
    assert config.MLFLOW_TRACKING_URI.get() == "http://mlflow:5000"
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/holdcast/dags"
    assert "COPY --chown=airflow:0 dags ./dags" in DOCKERFILE.read_text()
    assert json.loads(env["AIRFLOW_CONN_HOLDCAST_ERP"])["conn_type"]


def test_every_airflow_option_set_exists(services, tmp_path):
    """A misspelt AIRFLOW__SECTION__KEY is silently ignored by Airflow: check each against its config."""
    keys = sorted(
        {k for s in services.values() for k in (s.get("environment") or {}) if k.startswith("AIRFLOW__")}
    )
    script = (
        "import json, sys\n"
        "from airflow.configuration import conf\n"
        "conf.load_providers_configuration()\n"
        "d = conf.configuration_description\n"
        "print(json.dumps([k for k in json.loads(sys.argv[1])"
        " if k.split('__')[2].lower() not in d.get(k.split('__')[1].lower(), {}).get('options', {})]))\n"
    )
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor"}
    proc = subprocess.run(
        [sys.executable, "-c", script, json.dumps(keys + ["AIRFLOW__CORE__NO_SUCH_OPTION"])],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    unknown = json.loads(proc.stdout.strip().splitlines()[-1])
    assert unknown == ["AIRFLOW__CORE__NO_SUCH_OPTION"], f"not Airflow options: {unknown}"


def test_every_variable_compose_reads_is_documented_in_env_example(raw):
    documented = _env_example()
    text = ENV_EXAMPLE.read_text().splitlines()
    used = {m["name"]: m["op"] for s in _walk_strings(raw) for m in _VAR.finditer(s.replace("$$", ""))}
    assert used, "compose reads no variable from .env"
    for name in used:
        assert name in documented, f"{name} is read by docker-compose.yaml but not in .env.example"
        index = next(i for i, line in enumerate(text) if line.startswith(f"{name}="))
        before = text[index - 1]
        assert before.startswith("#") or text[index - 2].startswith("#"), (
            f"{name} has no comment in .env.example"
        )


def test_no_secret_is_written_down(raw):
    documented = _env_example()
    for name, value in documented.items():
        if _SECRET_NAME.search(name):
            assert re.fullmatch(r"<[a-z0-9-]+>", value), f".env.example: {name} must be a <placeholder>"
    assert "<erp-password>" in documented["AIRFLOW_CONN_HOLDCAST_ERP"]
    for service_name, service in raw["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if _SECRET_NAME.search(key) and not key.endswith(("_PASSWORDS_FILE",)):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", str(value)), (
                    f"{service_name}: {key} is not from .env"
                )
    for text in _walk_strings(raw):
        for credentials in re.findall(r"://([^/@]+)@", text):
            user, _, password = credentials.partition(":")
            assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", password), f"a password is written down in {text!r}"


def _pyproject() -> dict:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _dockerfile_instructions() -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    lines = [
        line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")
    ]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_image_uses_the_python_minor_version_of_the_local_install():
    base = next(arg for op, arg in _dockerfile_instructions() if op == "FROM")
    match = re.fullmatch(r"python:(\d+)\.(\d+)\.(\d+)-slim-[a-z]+", base)
    assert match, f"base image {base!r} is not a pinned python:X.Y.Z-slim image"
    minor = (int(match[1]), int(match[2]))
    assert minor == sys.version_info[:2], (
        f"image Python {minor} differs from this install's {sys.version_info[:2]}"
    )
    assert _pyproject()["tool"]["ruff"]["target-version"] == f"py{minor[0]}{minor[1]}"


def test_image_installs_the_project_from_the_same_lock_as_make():
    makefile = (ROOT / "Makefile").read_text()
    make_install = re.search(r'pip install --quiet -c constraints\.txt -e "\.\[([a-z,]+)\]"', makefile)
    assert make_install, "Makefile no longer installs from constraints.txt"
    make_extras = set(make_install[1].split(","))
    instructions = _dockerfile_instructions()
    copied = [arg.split() for op, arg in instructions if op == "COPY"]
    lock_copied_at = next(
        i for i, (op, arg) in enumerate(instructions) if op == "COPY" and "constraints.txt" in arg
    )
    installs = [
        (i, arg) for i, (op, arg) in enumerate(instructions) if op == "RUN" and "-c constraints.txt" in arg
    ]
    assert len(installs) == 1, "the image must install the project once, from constraints.txt"
    at, run = installs[0]
    assert at > lock_copied_at
    image_extras = set(re.search(r'-e "\.\[([a-z,]+)\]"', run)[1].split(","))
    assert image_extras == make_extras - {"dev"}, (image_extras, make_extras)
    assert set(_pyproject()["project"]["optional-dependencies"]) >= image_extras
    for parts in copied:
        for source in parts[1:-1]:
            if not source.startswith("--"):
                assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    for local_state in (".git", ".venv", ".holdcast", ".env"):
        assert local_state in ignored, f".dockerignore must keep {local_state} out of the image"


def test_lock_pins_what_the_celery_group_needs():
    pins = {
        line.split("==")[0].lower(): line.split("==")[1]
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line
    }
    for requirement in _pyproject()["project"]["optional-dependencies"]["celery"]:
        name, version = requirement.split("==")
        assert pins.get(name.lower()) == version, f"constraints.txt does not pin {requirement}"
    for needed in ("celery", "kombu", "redis"):
        assert needed in pins, f"constraints.txt does not pin {needed}"
