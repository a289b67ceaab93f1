"""A small Dockerfile reader for tests: instructions per stage, exec forms, and the container's
command line (ENTRYPOINT + CMD + ENV) as a process on this machine.

No Docker engine runs in CI, so tests check the Dockerfile's structure and run its exact command
line with the venv's `pulsar` in place of the image's.
"""

from __future__ import annotations

import json
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Instruction", "Stage", "parse_dockerfile", "entrypoint_process", "image_process"]

ROOT = Path(__file__).resolve().parents[2]


@dataclass(slots=True)
class Instruction:
    keyword: str  # upper case, e.g. "RUN"
    value: str  # the rest of the logical line, continuations joined
    line: int

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form instruction, None for shell form."""
        text = self.value.strip()
        if self.keyword == "HEALTHCHECK":
            # HEALTHCHECK [--option=value ...] CMD <command>
            text = text.partition("CMD ")[2].strip()
        if not text.startswith("["):
            return None
        value = json.loads(text)
        assert isinstance(value, list) and all(isinstance(v, str) for v in value)
        return value


@dataclass(slots=True)
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None

    def env(self) -> dict[str, str]:
        """ENV of the stage (KEY=VALUE form), with $PATH-style references left as written."""
        result: dict[str, str] = {}
        for ins in self.all("ENV"):
            for item in shlex.split(ins.value):
                key, _, value = item.partition("=")
                result[key] = value
        return result


def parse_dockerfile(path: Path = ROOT / "Dockerfile") -> list[Stage]:
    stages: list[Stage] = []
    logical = ""
    start = 0
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        stripped = raw.strip()
        if not logical and (not stripped or stripped.startswith("#")):
            continue
        if logical and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction are dropped by Docker too
        if not logical:
            start = number
        if stripped.endswith("\\"):
            logical += stripped[:-1] + " "
            continue
        logical += stripped
        keyword, _, value = logical.partition(" ")
        ins = Instruction(keyword.upper(), value.strip(), start)
        logical = ""
        if ins.keyword == "FROM":
            parts = ins.value.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(parts[0], name))
        else:
            assert stages, f"line {number}: {ins.keyword} before FROM"
            stages[-1].instructions.append(ins)
    assert not logical, "Dockerfile ends inside a continued line"
    return stages


def entrypoint_process(
    stage: Stage, replace: dict[str, str], extra_env: dict[str, str] | None = None
) -> tuple[list[str], dict[str, str]]:
    """ENTRYPOINT of the final stage as argv for this machine, and the image's ENV.

    `pulsar` becomes the venv's console script; a leading tini (`/usr/bin/tini --`) is kept only
    when tini is installed here. ENV values equal to a key of `replace` are replaced.
    """
    from tests.support.processes import pulsar_command

    entry = stage.last("ENTRYPOINT")
    assert entry is not None
    entrypoint = entry.exec_form()
    assert entrypoint is not None, "ENTRYPOINT in exec form"
    argv: list[str] = []
    rest = list(entrypoint)
    if rest[:2] == ["/usr/bin/tini", "--"]:
        tini = shutil.which("tini")
        argv += [tini, "--"] if tini else []
        rest = rest[2:]
    assert rest == ["pulsar"], f"unexpected ENTRYPOINT {entrypoint}"
    argv += pulsar_command()
    env = {k: replace.get(v, v) for k, v in stage.env().items() if k != "PATH"}
    env.update(extra_env or {})
    return argv, env


def image_process(
    stage: Stage, replace: dict[str, str], extra_env: dict[str, str] | None = None
) -> tuple[list[str], dict[str, str]]:
    """ENTRYPOINT + CMD of the final stage (see entrypoint_process); every CMD argument equal to
    a key of `replace` is replaced (e.g. the data volume by a temp dir, 0.0.0.0 by 127.0.0.1:
    tests bind loopback only)."""
    argv, env = entrypoint_process(stage, replace, extra_env)
    cmd = stage.last("CMD")
    assert cmd is not None
    command = cmd.exec_form()
    assert command is not None, "CMD in exec form"
    return argv + [replace.get(arg, arg) for arg in command], env
