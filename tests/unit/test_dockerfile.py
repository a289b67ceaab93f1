"""The Dockerfile's structure: non-root, exec forms, health check, volume, ports, pinned deps."""

from __future__ import annotations

import fnmatch
import re
import tomllib

import pytest

from tests.support.dockerfile import ROOT, Stage, parse_dockerfile

DATA_DIR = "/var/lib/pulsardb"


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile()


@pytest.fixture(scope="module")
def final(stages: list[Stage]) -> Stage:
    return stages[-1]


def test_slim_python_311_base_in_every_stage(stages: list[Stage]) -> None:
    assert len(stages) == 2, "a build stage and a runtime stage"
    for stage in stages:
        assert re.fullmatch(r"python:3\.11-slim(-\w+)?", stage.base), stage.base


def test_runs_as_non_root_and_nothing_runs_as_root_after_user(final: Stage) -> None:
    user = final.last("USER")
    assert user is not None
    uid = user.value.split(":")[0]
    assert uid not in ("0", "root"), "the runtime user must not be root"
    after = final.instructions[final.instructions.index(user) :]
    assert not [i for i in after if i.keyword == "RUN"], "no RUN after USER (would run non-root)"
    # The data directory is created for, and owned by, that user.
    run = " ".join(i.value for i in final.all("RUN"))
    assert f"mkdir -p {DATA_DIR}" in run
    assert f"chown {user.value} {DATA_DIR}" in run


def test_entrypoint_and_cmd_are_exec_form_so_signals_reach_pulsar(final: Stage) -> None:
    entry = final.last("ENTRYPOINT")
    cmd = final.last("CMD")
    assert entry is not None and cmd is not None
    entrypoint = entry.exec_form()
    assert entrypoint is not None, "shell-form ENTRYPOINT would put /bin/sh at PID 1"
    assert entrypoint[-1] == "pulsar"
    if len(entrypoint) > 1:
        # an init as PID 1 must forward signals: tini from Debian, installed in the image
        assert entrypoint[:2] == ["/usr/bin/tini", "--"]
        assert "tini" in " ".join(i.value for i in final.all("RUN"))
    command = cmd.exec_form()
    assert command is not None
    assert command[0] == "standalone", "the default role is standalone; others by command"
    assert command[command.index("--host") + 1] == "0.0.0.0", "reachable from outside"
    assert command[command.index("--data-dir") + 1] == DATA_DIR


def test_healthcheck_runs_the_stdlib_script_on_health(final: Stage) -> None:
    hc = final.last("HEALTHCHECK")
    assert hc is not None
    form = hc.exec_form()
    assert form is not None and form[0] == "python"
    assert form[1] == "/opt/pulsardb/bin/pulsar-healthcheck"
    # the build stage installs deploy/docker/healthcheck.py under that name
    build = " ".join(i.value for i in parse_dockerfile()[0].all("RUN"))
    assert "deploy/docker/healthcheck.py /opt/pulsardb/bin/pulsar-healthcheck" in build
    assert "/health" in (ROOT / "deploy/docker/healthcheck.py").read_text()
    for option in ("--interval=", "--timeout=", "--start-period=", "--retries="):
        assert option in hc.value


def test_volume_env_and_ports(final: Stage) -> None:
    volume = final.last("VOLUME")
    assert volume is not None and volume.exec_form() == [DATA_DIR]
    env = final.env()
    assert env["PULSAR_DATA_DIR"] == DATA_DIR
    assert env["PYTHONUNBUFFERED"] == "1", "logs must not sit in a buffer when the pod dies"
    assert env["PATH"].startswith("/opt/pulsardb/bin:")
    exposed = " ".join(i.value for i in final.all("EXPOSE")).split()
    assert "8080" in exposed and "7100" in exposed
    assert any(re.fullmatch(r"7200-72\d\d", p) for p in exposed), exposed


def test_project_installed_from_a_wheel_with_the_constraints(stages: list[Stage]) -> None:
    run = " ".join(i.value for i in stages[0].all("RUN"))
    assert "pip wheel --no-deps" in run
    assert "-c /src/deploy/docker/constraints.txt" in run
    copied = [i.value for i in stages[-1].all("COPY")]
    assert copied == ["--from=build /opt/pulsardb /opt/pulsardb"], "only the venv reaches runtime"


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "deploy/docker/constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and re.fullmatch(r"[\w.+-]+", version), f"not an exact pin: {line}"
            pins[name.lower()] = version
    return pins


def test_constraints_pin_exactly_the_pyproject_dependencies() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = _constraints()
    for dep in pyproject["project"]["dependencies"]:
        name, sep, version = dep.partition("==")
        assert sep, f"runtime dependency not pinned in pyproject.toml: {dep}"
        assert pins.get(name.lower()) == version, f"{name}: constraints.txt disagrees"


def test_constraints_match_the_tested_venv() -> None:
    """The image gets the same transitive versions as the venv the tests ran in."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("lock", ROOT / "deploy/docker/lock.py")
    assert spec is not None and spec.loader is not None
    lock = importlib.util.module_from_spec(spec)
    sys.modules["lock"] = lock
    spec.loader.exec_module(lock)
    closure = lock.runtime_closure()
    pins = _constraints()
    # Extra pins are harmless (`pip -c` constrains only what gets installed) and let a branch
    # pin a dependency that another branch adds; every installed package must match.
    wrong = {name: (pins.get(name), version) for name, version in closure.items()}
    wrong = {name: pv for name, pv in wrong.items() if pv[0] != pv[1]}
    assert not wrong, (
        f"constraints.txt vs venv (pinned, installed): {wrong}; regenerate: "
        ".venv/bin/python deploy/docker/lock.py > deploy/docker/constraints.txt"
    )


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.rstrip("/")
        matches = (
            fnmatch.fnmatch(path, pat)
            or fnmatch.fnmatch(path.split("/", maxsplit=1)[0], pat)
            or path.startswith(pat + "/")
            or (pat.startswith("**/") and fnmatch.fnmatch(path.rsplit("/", 1)[-1], pat[3:]))
        )
        if matches:
            ignored = not negate
    return ignored


def test_dockerignore_admits_sources_and_excludes_local_state() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [p.strip() for p in lines if p.strip() and not p.startswith("#")]
    for needed in (
        "pyproject.toml",
        "pulsar_cluster/cli.py",
        "coordinator/app.py",
        "node/local.py",
        "deploy/docker/constraints.txt",
        "deploy/docker/healthcheck.py",
    ):
        assert (ROOT / needed).exists()
        assert not _ignored(needed, patterns), needed
    for local in (".venv/bin/python", "data/x", ".git/HEAD", "tests/unit/x.py", ".tools/helm"):
        assert _ignored(local, patterns), local
    assert _ignored("coordinator/__pycache__/app.cpython-311.pyc", patterns)
