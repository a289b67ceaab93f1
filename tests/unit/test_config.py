from __future__ import annotations

import argparse
from pathlib import Path

from pulsar_cluster.config import apply_config_sources


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    p.add_argument("--config")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--data-dir", default="./data")
    p.add_argument("--fsync", default="always")
    return p


def test_precedence_flag_env_file_default(tmp_path: Path) -> None:
    cfg = tmp_path / "p.toml"
    cfg.write_text('port = 9000\ndata-dir = "/from/file"\nfsync = "never"\n')
    p = parser()
    argv = ["--config", str(cfg), "--fsync", "interval"]
    apply_config_sources(p, argv, environ={"PULSAR_DATA_DIR": "/from/env"})
    args = p.parse_args(argv)
    assert args.port == 9000  # file
    assert args.data_dir == "/from/env"  # env beats file
    assert args.fsync == "interval"  # flag beats both


def test_env_values_are_typed() -> None:
    p = parser()
    apply_config_sources(p, [], environ={"PULSAR_PORT": "7"})
    assert p.parse_args([]).port == 7


def test_retention_specs() -> None:
    from pulsar_cluster.config import parse_retention

    day, hour = 86_400 * 10**9, 3_600 * 10**9
    assert parse_retention(["t=30d", "t/debug=1h", "other/m=2h"]) == {
        "t": (30 * day, {"debug": hour}),
        "other": (0, {"m": 2 * hour}),
    }
    for bad in ("t", "t=", "t=soon", "=1d", "t/=1d", "t=0s"):
        try:
            parse_retention([bad])
        except ValueError as exc:
            assert bad in str(exc)
        else:
            raise AssertionError(f"{bad!r} was accepted")
