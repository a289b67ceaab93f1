"""Configuration of the `pulsar` commands: flags, then `PULSAR_*` environment, then a TOML file.

Every flag `--some-flag` of a server command can also be given as the environment variable
`PULSAR_SOME_FLAG`, or as `some_flag = ...` (or `some-flag`) in the TOML file named by
`--config` / `PULSAR_CONFIG`. Precedence: command line > environment > file > built-in default.
"""

from __future__ import annotations

import argparse
import os
import tomllib
from collections.abc import Mapping
from typing import Any

__all__ = ["apply_config_sources", "env_name", "ENV_ALIASES", "parse_retention"]

#: Flags whose environment variable is not simply PULSAR_<FLAG> (DESIGN.md names these).
ENV_ALIASES = {"remote_cluster": "PULSAR_REMOTE_CLUSTERS"}


def env_name(dest: str) -> str:
    return ENV_ALIASES.get(dest, "PULSAR_" + dest.upper())


def _load_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise SystemExit(f"pulsar: config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SystemExit(f"pulsar: invalid TOML in {path}: {exc}") from None
    return {k.replace("-", "_"): v for k, v in data.items()}


def apply_config_sources(
    parser: argparse.ArgumentParser, argv: list[str], environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Set the parser's defaults from the TOML file and the environment (in that order).

    Repeatable flags (action "append") take a TOML list or a comma-separated variable.
    Returns the TOML file's values, for settings that are tables rather than flags
    (e.g. `[remote_clusters.NAME]`).
    """
    environ = os.environ if environ is None else environ
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default=environ.get("PULSAR_CONFIG"))
    known, _ = pre.parse_known_args(argv)
    file_values = _load_toml(known.config) if known.config else {}
    for action in parser._actions:
        dest = action.dest
        if dest in ("help", "config") or not action.option_strings:
            continue
        value: Any = None
        if dest in file_values:
            value = file_values[dest]
        env_value = environ.get(env_name(dest))
        if env_value is not None:
            value = env_value
        if value is None:
            continue
        if isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction):
            value = value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
        elif isinstance(action, argparse._AppendAction):
            items = value.split(",") if isinstance(value, str) else list(value)
            value = [item.strip() for item in items if str(item).strip()]
        elif callable(action.type) and isinstance(value, str):
            value = action.type(value)
        parser.set_defaults(**{dest: value})
    return file_values


def parse_retention(specs: list[str]) -> dict[str, tuple[int, dict[str, int]]]:
    """`DB=DURATION` and `DB/MEASUREMENT=DURATION` specs -> {db: (ns, {measurement: ns})}.

    A database given only per measurement keeps its other measurements forever (0). Raises
    ValueError naming the bad spec.
    """
    from pulsar_cluster.timeutil import parse_duration

    out: dict[str, tuple[int, dict[str, int]]] = {}
    for spec in specs:
        target, sep, duration_text = spec.partition("=")
        db, _, measurement = target.partition("/")
        if not sep or not db.strip() or (target.count("/") and not measurement.strip()):
            raise ValueError(f"invalid retention '{spec}': use DB=30d or DB/MEASUREMENT=1d")
        try:
            duration = parse_duration(duration_text)
        except ValueError as exc:
            raise ValueError(f"invalid retention '{spec}': {exc}") from None
        if duration <= 0:
            raise ValueError(f"invalid retention '{spec}': the duration must be positive")
        default, overrides = out.get(db.strip(), (0, {}))
        if measurement:
            overrides[measurement.strip()] = duration
        else:
            default = duration
        out[db.strip()] = (default, overrides)
    return out
