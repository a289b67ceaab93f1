"""The configuration reloader over the real `pulsar` argument parsing and a real TOML file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from pulsar_cluster.cli import parse_command
from pulsar_cluster.reload import FILE_PREFIX, ConfigReloadError, LiveSetting, Reloader


def _reloader(
    argv: list[str], applied: list[tuple[str, Any]], fail_on: str | None = None
) -> Reloader:
    args = parse_command(argv)

    def load() -> tuple[argparse.Namespace, dict[str, Any]]:
        new = parse_command(argv, exit_on_error=False)
        return new, new.config_file_values

    def setting(key: str) -> LiveSetting:
        def prepare(new: argparse.Namespace, file_values: dict[str, Any]) -> Any:
            value = (
                file_values.get(key.removeprefix(FILE_PREFIX))
                if key.startswith(FILE_PREFIX)
                else getattr(new, key)
            )
            if value == fail_on:
                raise ValueError(f"{key} may not be {value}")
            return lambda: applied.append((key, value))

        return LiveSetting((key,), prepare)

    live = [
        setting("admin_token"),
        setting("max_body_mb"),
        setting(FILE_PREFIX + "remote_clusters"),
    ]
    return Reloader("coordinator", load, args, args.config_file_values, live)


def test_applies_live_settings_and_reports_the_rest(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('admin_token = "a"\n')
    applied: list[tuple[str, Any]] = []
    argv = ["coordinator", "--config", str(config), "--port", "9000"]
    reloader = _reloader(argv, applied)
    assert reloader.reload("test") == {"status": "reloaded", "applied": [], "needs_restart": []}

    config.write_text(
        'admin_token = "b"\nmax_body_mb = 7\nnodes = "h:1"\nport = 1234\n'
        '[remote_clusters.eu]\nurl = "http://eu:8080"\n'
    )
    result = reloader.reload("test")
    assert result["applied"] == ["admin_token", "max_body_mb", "file:remote_clusters"]
    # `nodes` cannot change at runtime; `port` is a flag on the command line, which wins.
    assert result["needs_restart"] == ["nodes"]
    assert applied == [
        ("admin_token", "b"),
        ("max_body_mb", 7),
        ("file:remote_clusters", {"eu": {"url": "http://eu:8080"}}),
    ]
    # Nothing changed since: nothing applied again, the restart-only change is reported again.
    applied.clear()
    assert reloader.reload("test")["needs_restart"] == ["nodes"]
    assert applied == []


def test_a_bad_value_applies_nothing(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('admin_token = "a"\n')
    applied: list[tuple[str, Any]] = []
    reloader = _reloader(["coordinator", "--config", str(config)], applied, fail_on=9)
    config.write_text('admin_token = "b"\nmax_body_mb = 9\n')
    with pytest.raises(ConfigReloadError, match="invalid max_body_mb: max_body_mb may not be 9"):
        reloader.reload("test")
    assert applied == []  # admin_token was valid, but nothing is applied unless all is
    assert reloader.failures == 1
    config.write_text('admin_token = "b"\nmax_body_mb = 8\n')
    assert reloader.reload("test")["applied"] == ["admin_token", "max_body_mb"]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('admin_token = "unterminated\n', "invalid TOML"),
        ("max_body_mb = 'many'\n", "invalid literal for int()"),
        ('log_level = "debug"\nport = "x"\n', "invalid literal for int()"),
    ],
)
def test_unreadable_configuration_keeps_the_old(tmp_path: Path, text: str, reason: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text('admin_token = "a"\n')
    applied: list[tuple[str, Any]] = []
    reloader = _reloader(["coordinator", "--config", str(config)], applied)
    config.write_text(text)
    with pytest.raises(ConfigReloadError, match=reason) as info:
        reloader.reload("test")
    assert "the old configuration is kept" in info.value.message
    assert info.value.status_code == 400
    config.unlink()
    with pytest.raises(ConfigReloadError, match="config file not found"):
        reloader.reload("test")
    assert applied == []
