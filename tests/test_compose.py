"""compose.yaml, .env.example, the Dockerfile and its lock file, checked without Docker.

This machine has no Docker engine, so compose.yaml is read the way Compose reads it
(YAML with merge keys, then `${…}` interpolation from .env) and validated against the
Compose specification's JSON schema. tests/data/compose-spec.json is schema/compose-spec.json
of github.com/compose-spec/compose-spec, unchanged (its $id "compose_spec.json", draft-07),
as at commit 170098ba07d9f53c383a41bfd4c5166b0a4529a6 (the file last changed in a08f8d5,
2025-10-28). That file is the specification's copy of compose-go's schema, which newer
Compose versions embed; a file valid against it is valid for them too.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from workflows.cli.main import build_parser
from workflows.config.secrets import SECRETS
from workflows.config.settings import load_settings
from workflows.core.durations import parse_duration
from workflows.engine.tasks import TIME_LIMIT

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
LOCK = ROOT / "requirements.lock"
SCHEMA = Path(__file__).parent / "data" / "compose-spec.json"
IMAGE = "takedown:local"  # what compose.yaml builds from the Dockerfile
RELAY = {"TAKEDOWN_SMTP_URL": "smtp://notices@relay.hotline.example:587?starttls=1"}
SENDER = {"TAKEDOWN_SENDER": "reports@hotline.example"}


class MissingVariable(Exception):
    """A `${NAME:?message}` whose variable is unset or empty: Compose refuses the file."""


_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_]\w*))"
)


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Return VALUE with Compose's interpolation done: $$, ${X}, ${X:-d}, ${X-d}, ${X:?e}."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name, op, arg = match["name"] or match["bare"], match["op"] or "", match["arg"] or ""
        current = env.get(name)
        unset = not current if op.startswith(":") else current is None
        if op.endswith("-") and unset:
            return arg
        if op.endswith("?") and unset:
            raise MissingVariable(f"{name}: {arg}")
        return current or ""

    return _VARIABLE.sub(replace, value)


def read_env_file(path: Path) -> dict[str, str]:
    """Return the KEY=VALUE lines of a .env file (comments and blank lines skipped)."""
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            found[key.strip()] = value.strip().strip("\"'")
    return found


def example_env() -> dict[str, str]:
    """Return .env as an operator makes it from .env.example: the relay and sender named."""
    return {**read_env_file(ENV_EXAMPLE), **RELAY, **SENDER}


def raw_compose() -> dict[str, Any]:
    """Return compose.yaml as YAML (merge keys resolved), before interpolation."""
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def compose(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Return compose.yaml as Compose sees it with ENV as .env (default: example_env())."""
    result = interpolate(raw_compose(), example_env() if env is None else env)
    assert isinstance(result, dict)
    return result


def takedown_services(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Return the services that run the takedown image."""
    return {
        name: service
        for name, service in config["services"].items()
        if service.get("image") == IMAGE or "build" in service
    }


def effective_env(service: Mapping[str, Any], dotenv: Mapping[str, str]) -> dict[str, str]:
    """Return a takedown container's environment: env_file (.env), then `environment`."""
    assert service.get("env_file") == ".env"
    environment = service.get("environment", {})
    assert isinstance(environment, dict), "environment as a mapping"
    return {**dotenv, **{key: str(value) for key, value in environment.items()}}


# --- The schema ------------------------------------------------------------------------


def test_compose_file_is_valid_against_the_compose_specification() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    assert schema["$id"] == "compose_spec.json"
    validator = jsonschema.Draft7Validator(schema)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(compose())]
    assert errors == []


def test_the_schema_catches_what_compose_would_refuse() -> None:
    """The validation is not vacuous: an unknown key and a bad condition are caught."""
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))
    config = compose()
    config["services"]["worker"]["stop_grace"] = "3m"
    config["services"]["web"]["depends_on"]["migrate"]["condition"] = "service_done"
    assert len(list(validator.iter_errors(config))) == 2


# --- Commands --------------------------------------------------------------------------


def _parses(argv: list[str]) -> None:
    """Fail unless `takedown ARGV` is a command line the CLI accepts."""
    try:
        build_parser().parse_args(argv)
    except SystemExit as error:  # argparse's way of refusing
        pytest.fail(f"takedown {shlex.join(argv)}: refused by the CLI ({error.code})")


def _run_examples(text: str, services: set[str]) -> Iterator[list[str]]:
    """Yield the takedown arguments of each `docker compose run … SERVICE ARGS` in TEXT."""
    joined = re.sub(r"\\\n\s*#?\s*", " ", text)  # continuation lines, in comments too
    for match in re.finditer(r"docker compose run ([^\n<]*)", joined):
        words = shlex.split(match[1])
        while words and words[0].startswith("-"):
            words.pop(0)
        if words and words[0] in services:
            yield words[1:]


def test_every_takedown_command_in_compose_exists_in_the_cli() -> None:
    services = takedown_services(compose())
    assert {"migrate", "worker", "web"} <= set(services)
    for service in services.values():
        _parses(service["command"])
    examples = list(_run_examples(COMPOSE.read_text(encoding="utf-8"), set(services)))
    assert examples, "compose.yaml shows how to add the first user"
    for argv in examples:
        _parses(argv)


def dockerfile_instructions(stage: str = "final") -> list[tuple[str, str]]:
    """Return (INSTRUCTION, arguments) of the Dockerfile's final (or every) stage."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    found = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            if word.upper() == "FROM" and stage == "final":
                found = []
            found.append((word.upper(), rest.strip()))
    return found


def test_every_takedown_command_in_the_dockerfile_exists_in_the_cli() -> None:
    final = dict(dockerfile_instructions())
    assert json.loads(final["ENTRYPOINT"]) == ["takedown"]
    _parses(json.loads(final["CMD"]))


# --- Mail: no default relay, the catcher opt-in and local ------------------------------


def test_nothing_starts_until_the_relay_is_named() -> None:
    """No default relay: an .env without TAKEDOWN_SMTP_URL is refused as a whole."""
    assert read_env_file(ENV_EXAMPLE)["TAKEDOWN_SMTP_URL"] == ""
    with pytest.raises(MissingVariable, match="TAKEDOWN_SMTP_URL"):
        compose({**read_env_file(ENV_EXAMPLE), **SENDER})
    with pytest.raises(MissingVariable, match="TAKEDOWN_SENDER"):
        compose({**read_env_file(ENV_EXAMPLE), **RELAY})


def test_no_service_sends_to_the_catcher_by_default() -> None:
    catcher_names = {"catcher", "mailpit", "mail", "1025"}
    for name, service in raw_compose()["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if key == "TAKEDOWN_SMTP_URL":
                assert re.fullmatch(r"\$\{TAKEDOWN_SMTP_URL:\?[^}]*\}", value), name
            assert not any(word in str(value) for word in catcher_names), (name, key)
    relay = RELAY["TAKEDOWN_SMTP_URL"]
    for service in takedown_services(compose()).values():
        assert effective_env(service, example_env())["TAKEDOWN_SMTP_URL"] == relay


def test_the_catcher_is_opt_in_and_its_page_local() -> None:
    services = compose()["services"]
    catchers = [name for name, s in services.items() if "mailpit" in s.get("image", "")]
    assert catchers == ["catcher"]
    assert services["catcher"]["profiles"] == ["catcher"]
    assert services["catcher"]["ports"]
    for name, service in services.items():
        if not service.get("profiles"):
            assert "catcher" not in service.get("depends_on", {}), name


def test_every_published_port_binds_to_localhost() -> None:
    for name, service in compose()["services"].items():
        for port in service.get("ports", []):
            assert isinstance(port, str) and port.startswith("127.0.0.1:"), (name, port)


# --- Secrets ---------------------------------------------------------------------------


def _secret_paths(service: Mapping[str, Any]) -> set[str]:
    return {f"/run/secrets/{name}" for name in service.get("secrets", [])}


def test_every_secret_is_a_file_under_secrets() -> None:
    config = compose()
    used = {name for s in config["services"].values() for name in s.get("secrets", [])}
    assert set(config["secrets"]) == used
    for name, secret in config["secrets"].items():
        assert secret == {"file": f"./secrets/{name}"}


def test_no_password_is_inline_or_in_the_environment() -> None:
    """Passwords reach processes as files only: no PASSWORD variable, no URL with one."""
    dotenv = example_env()
    direct = {f"TAKEDOWN_{name}" for name in SECRETS} - set(RELAY)
    for name, service in compose(dotenv)["services"].items():
        env = service.get("environment", {})
        if service.get("env_file"):
            env = effective_env(service, dotenv)
        for key, value in env.items():
            assert not (key.endswith("PASSWORD") and value), (name, key)
            assert not (key in direct and value), (name, key)
            assert not re.search(r"://[^/@\s]*:[^/@\s]*@", str(value)), (name, key)
            if key.endswith("_FILE") and value:
                assert value in _secret_paths(service), (name, key, "not a mounted secret")


def test_postgres_and_redis_read_their_passwords_from_secrets() -> None:
    services = compose()["services"]
    postgres, redis = services["postgres"], services["redis"]
    assert "POSTGRES_PASSWORD" not in postgres["environment"]
    assert postgres["environment"]["POSTGRES_PASSWORD_FILE"] in _secret_paths(postgres)
    script = " ".join(redis["command"])
    assert "requirepass" in script
    assert re.search(r"\$\(cat (/run/secrets/\w+)\)", script)[1] in _secret_paths(redis)  # type: ignore[index]


def test_takedown_reads_each_secret_file_compose_names(tmp_path: Path) -> None:
    """Each TAKEDOWN_<NAME>_FILE given to a takedown service is one takedown reads."""
    samples = {
        "DATABASE_URL": "postgresql://takedown:s3cret@postgres:5432/takedown",
        "REDIS_URL": "redis://:s3cret@redis:6379/0",
        "SMTP_PASSWORD": "s3cret",
        "IMAP_PASSWORD": "s3cret",
    }
    dotenv = {**example_env(), "TAKEDOWN_IMAP_PASSWORD_FILE": "/run/secrets/imap_password"}
    seen = set()
    for service in takedown_services(compose(dotenv)).values():
        for key, value in effective_env(service, dotenv).items():
            if key.endswith("_FILE") and value:
                name = key.removeprefix("TAKEDOWN_").removesuffix("_FILE")
                assert name in SECRETS, key
                (tmp_path / name).write_text(samples[name] + "\n", encoding="utf-8")
                settings = load_settings({key: str(tmp_path / name), "TAKEDOWN_HOME": "/x"})
                assert getattr(settings, name.lower()) == samples[name]
                seen.add(name)
    assert seen == set(samples)


# --- .env.example ----------------------------------------------------------------------


def variables_takedown_reads() -> set[str]:
    """Return every TAKEDOWN_ variable of workflows/config/settings.py and secrets.py."""
    source = (ROOT / "workflows" / "config" / "settings.py").read_text(encoding="utf-8")
    names = set(re.findall(r'(?<![.\w])(?:get|seconds)\("([A-Z][A-Z0-9_]*)"', source))
    names |= set(re.findall(r'PREFIX \+ "([A-Z][A-Z0-9_]*)"', source))
    names |= set(SECRETS) | {f"{name}_FILE" for name in SECRETS}
    assert len(names) > 40, "settings.py changed shape: teach this test to read it"
    return {f"TAKEDOWN_{name}" for name in names}


def test_env_example_lists_every_variable_takedown_reads() -> None:
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    listed = set(re.findall(r"^#? ?(TAKEDOWN_[A-Z0-9_]+)=", text, re.MULTILINE))
    assert variables_takedown_reads() - listed == set(), "missing from .env.example"
    assert listed - variables_takedown_reads() == set(), "not read by takedown"


def test_env_example_explains_each_variable_and_holds_no_secret() -> None:
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    variable = re.compile(r"^#? ?TAKEDOWN_[A-Z0-9_]+=")
    for number, line in enumerate(lines):
        if variable.match(line):  # under a comment, with the lines it introduces
            above = number - 1
            while above >= 0 and variable.match(lines[above]):
                above -= 1
            assert above >= 0 and lines[above].startswith("#"), f"line {number + 1}: no comment"
    env = read_env_file(ENV_EXAMPLE)
    for key in ("TAKEDOWN_SMTP_PASSWORD", "TAKEDOWN_IMAP_PASSWORD", "TAKEDOWN_DATABASE_URL"):
        assert not env.get(key), key
    assert all("@" not in value or "{token}" in value for value in env.values())
    load_settings({**env, **RELAY, **SENDER, "TAKEDOWN_SMTP_PASSWORD_FILE": ""})


# --- The services' shape ---------------------------------------------------------------


def test_workers_all_may_sweep_and_expose_their_metrics() -> None:
    worker = compose()["services"]["worker"]
    assert "--no-sweep" not in worker["command"]
    assert "deploy" not in worker and "container_name" not in worker, "must scale"
    env = worker["environment"]
    assert env["TAKEDOWN_LOG_FORMAT"] == "json"
    port = env["TAKEDOWN_METRICS_PORT"].rpartition(":")[2]
    assert f"127.0.0.1:{port}/healthz" in " ".join(worker["healthcheck"]["test"])


def test_workers_outlast_the_task_time_limit_when_stopped() -> None:
    grace = compose()["services"]["worker"]["stop_grace_period"]
    assert parse_duration(grace, what="stop_grace_period") > TIME_LIMIT


def test_the_desk_listens_on_its_interface_behind_a_trusted_proxy() -> None:
    config = compose()
    web = config["services"]["web"]
    argv = build_parser().parse_args(web["command"])
    assert argv.host == "0.0.0.0"
    assert web["ports"] == [f"127.0.0.1:{argv.port}:{argv.port}"]
    assert f"127.0.0.1:{argv.port}/healthz" in " ".join(web["healthcheck"]["test"])
    gateway = config["networks"]["default"]["ipam"]["config"][0]["gateway"]
    assert web["environment"]["TAKEDOWN_TRUSTED_PROXIES"] == gateway
    assert web["environment"]["TAKEDOWN_LOG_FORMAT"] == "json"


def test_every_service_has_a_health_check_and_a_restart_policy() -> None:
    for name, service in compose()["services"].items():
        if name == "migrate":  # a job: the others wait for it to exit 0
            assert service["restart"] == "no"
            continue
        assert service["healthcheck"]["test"], name
        assert service["restart"] == "unless-stopped", name


def test_the_others_wait_for_the_migration_and_healthy_stores() -> None:
    services = compose()["services"]
    assert services["migrate"]["command"] == ["migrate"]
    for name in ("worker", "web"):
        needs = services[name]["depends_on"]
        assert needs["migrate"]["condition"] == "service_completed_successfully"
        assert needs["postgres"]["condition"] == needs["redis"]["condition"] == "service_healthy"


def test_state_lives_on_named_volumes_and_redis_appends() -> None:
    config = compose()
    services = config["services"]
    for name, path in (("postgres", "/var/lib/postgresql/data"), ("redis", "/data")):
        assert f"{name}:{path}" in services[name]["volumes"]
    assert "--appendonly yes" in " ".join(services["redis"]["command"])
    home = services["web"]["environment"]["TAKEDOWN_HOME"]
    for service in takedown_services(config).values():
        assert f"home:{home}" in service["volumes"]
    assert {"postgres", "redis", "home"} <= set(config["volumes"])


# --- The Dockerfile and its lock file --------------------------------------------------


def test_the_image_runs_as_an_unprivileged_user_with_its_home_on_a_volume() -> None:
    final = dockerfile_instructions()
    user = [rest for word, rest in final if word == "USER"][-1]
    assert user.partition(":")[0] not in ("root", "0", "")
    settings = dict(final)
    assert "HEALTHCHECK" in settings
    home = re.search(r"TAKEDOWN_HOME=(\S+)", settings["ENV"])[1]  # type: ignore[index]
    assert json.loads(settings["VOLUME"]) == [home]
    assert home == compose()["services"]["web"]["environment"]["TAKEDOWN_HOME"]


def test_the_image_installs_the_lock_file_before_the_code() -> None:
    """Dependencies in a layer of their own, from the lock with hashes, then the package."""
    steps = dockerfile_instructions(stage="all")
    copy_lock = next(i for i, (w, r) in enumerate(steps) if w == "COPY" and LOCK.name in r)
    install = next(i for i, (w, r) in enumerate(steps) if w == "RUN" and LOCK.name in r)
    copy_code = next(i for i, (w, r) in enumerate(steps) if w == "COPY" and "workflows" in r)
    assert copy_lock < install < copy_code
    assert "--require-hashes" in steps[install][1]


def _locked() -> dict[str, str]:
    """Return the lock file's pins, name → version, checking each carries a hash."""
    pins = {}
    for block in re.split(r"\n(?=[a-zA-Z])", LOCK.read_text(encoding="utf-8")):
        match = re.match(r"([A-Za-z0-9._-]+)==(\S+)", block)
        if match:
            assert "--hash=sha256:" in block, f"{match[1]}: no hash"
            pins[canonicalize_name(match[1])] = match[2]
    return pins


def test_the_lock_file_pins_every_dependency_and_build_tool() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    pins = _locked()
    wanted = project["project"]["dependencies"] + project["build-system"]["requires"]
    for text in wanted:
        requirement = Requirement(text)
        version = pins.get(canonicalize_name(requirement.name))
        assert version is not None, f"{requirement.name}: not in {LOCK.name}: regenerate it"
        assert requirement.specifier.contains(version), f"{requirement}: locked at {version}"
