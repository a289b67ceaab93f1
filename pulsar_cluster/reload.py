"""Configuration reload: re-read the TOML file and the environment, apply what can change live.

A server process (standalone, coordinator, node) keeps one `Reloader`. SIGHUP and
`POST /api/v1/admin/reload` (node API: `POST /v1/reload`) call `reload()`, which

1. parses the command line again exactly as at start (flags > PULSAR_* environment > the TOML
   file of `--config`), so a setting given as a flag keeps winning over the file;
2. compares every setting with the running one; the changed ones the role can apply live
   (its `LiveSetting`s, e.g. log level, admin token, federation, retention, query limits) are
   first all prepared (validated), then all committed: a bad value changes nothing;
3. logs a warning `config_change_needs_restart` for every other changed setting (ports, data
   directory, shard count, ...): the process keeps running with the old value, and the next
   reload reports it again until the process restarts;
4. on a file that cannot be read or parsed, or a value that does not validate, keeps the whole
   old configuration, logs `config_reload_failed` with the reason and raises ConfigReloadError.

The list of live settings per role is in docs/operations.md ("Reloading the configuration").
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pulsar_cluster.errors import BadRequestError
from pulsar_cluster.logs import check_log_level, get_logger, set_log_level

__all__ = [
    "ConfigReloadError",
    "LiveSetting",
    "Reloader",
    "ReloadCollector",
    "log_level_setting",
    "FILE_PREFIX",
]

log = get_logger(__name__)

#: Changed TOML tables that are not flags (e.g. `[remote_clusters.eu]`) are named "file:<key>".
FILE_PREFIX = "file:"
#: Namespace entries that are not settings.
_NOT_SETTINGS = frozenset({"config_file_values", "reload_argv", "command"})

Loaded = tuple[argparse.Namespace, dict[str, Any]]
Commit = Callable[[], None]


class ConfigReloadError(BadRequestError):
    """The new configuration was not applied (unreadable file, invalid value); the old one
    stays in force. 400 at the HTTP edge."""


@dataclass(frozen=True, slots=True)
class LiveSetting:
    """Settings applied together at runtime. `prepare(args, file_values)` validates the new
    values (ValueError with the reason) and returns the function that applies them; it must
    not change anything itself."""

    keys: tuple[str, ...]
    prepare: Callable[[argparse.Namespace, dict[str, Any]], Commit]


def log_level_setting() -> LiveSetting:
    def prepare(args: argparse.Namespace, _: dict[str, Any]) -> Commit:
        level = str(args.log_level)
        check_log_level(level)
        return lambda: set_log_level(level)

    return LiveSetting(("log_level",), prepare)


def _settings(
    args: argparse.Namespace, file_values: dict[str, Any], tables: set[str]
) -> dict[str, Any]:
    """Every flag's value, and the file tables a live setting of the role names."""
    out = {k: v for k, v in vars(args).items() if k not in _NOT_SETTINGS}
    for key in tables:
        out[FILE_PREFIX + key] = file_values.get(key)
    return out


class Reloader:
    def __init__(
        self,
        role: str,
        load: Callable[[], Loaded],
        current: argparse.Namespace,
        file_values: dict[str, Any],
        live: list[LiveSetting],
    ) -> None:
        self.role = role
        self._load = load
        self._live = live
        self._tables = {
            k.removeprefix(FILE_PREFIX) for s in live for k in s.keys if k.startswith(FILE_PREFIX)
        }
        self._settings = _settings(current, file_values, self._tables)
        self._lock = threading.Lock()  # SIGHUP and the HTTP route may race
        self.reloads = 0
        self.failures = 0
        self.last_ok = True  # the last reload (if any) applied the file

    def reload(self, source: str) -> dict[str, Any]:
        """Apply the configuration as it is now; returns what was applied and what needs a
        restart. Raises ConfigReloadError (old configuration kept) when it cannot."""
        with self._lock:
            try:
                return self._reload(source)
            except ConfigReloadError as exc:
                self.failures += 1
                self.last_ok = False
                log.error("config_reload_failed", role=self.role, source=source, reason=exc.message)
                raise

    def _reload(self, source: str) -> dict[str, Any]:
        try:
            args, file_values = self._load()
        except SystemExit as exc:  # the CLI's own messages for a missing or invalid file
            reason = str(exc.code).removeprefix("pulsar: ")
            raise ConfigReloadError(f"{reason}; the old configuration is kept") from None
        except (ValueError, TypeError) as exc:
            raise ConfigReloadError(f"{exc}; the old configuration is kept") from None
        new = _settings(args, file_values, self._tables)
        changed = {k for k in set(new) | set(self._settings) if new.get(k) != self._settings.get(k)}
        commits: list[Commit] = []
        applied: list[str] = []
        for setting in self._live:
            keys = changed.intersection(setting.keys)
            if not keys:
                continue
            try:
                commits.append(setting.prepare(args, file_values))
            except (ValueError, TypeError) as exc:
                raise ConfigReloadError(
                    f"invalid {', '.join(sorted(keys))}: {exc}; the old configuration is kept"
                ) from None
            applied.extend(sorted(keys))
        for commit in commits:
            commit()
        for key in applied:
            self._settings[key] = new.get(key)
        restart = sorted(changed - set(applied))
        for key in restart:
            log.warning(
                "config_change_needs_restart",
                role=self.role,
                setting=key,
                running=_show(key, self._settings.get(key)),
                configured=_show(key, new.get(key)),
            )
        self.reloads += 1
        self.last_ok = True
        log.info(
            "config_reloaded", role=self.role, source=source, applied=applied, needs_restart=restart
        )
        return {"status": "reloaded", "applied": applied, "needs_restart": restart}


def _show(key: str, value: Any) -> Any:
    """Values of secrets are never logged."""
    if any(word in key for word in ("token", "secret", "password")) or key.startswith(FILE_PREFIX):
        return "<hidden>" if value else value
    return value


class ReloadCollector(Collector):
    """`pulsar_config_reloads_total{result}` and `pulsar_config_last_reload_successful` (as
    Prometheus's own `prometheus_config_last_reload_successful`): alert when it stays 0."""

    def __init__(self, reloader: Reloader) -> None:
        self._reloader = reloader

    def collect(self) -> Iterator[Metric]:
        r = self._reloader
        reloads = CounterMetricFamily(
            "pulsar_config_reloads", "Configuration reloads by result", labels=["result"]
        )
        reloads.add_metric(["applied"], r.reloads)
        reloads.add_metric(["failed"], r.failures)
        yield reloads
        yield GaugeMetricFamily(
            "pulsar_config_last_reload_successful",
            "1 unless the last configuration reload failed (the old configuration is in force)",
            value=1 if r.last_ok else 0,
        )
