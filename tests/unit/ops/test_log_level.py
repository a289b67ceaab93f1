"""The log level changes at runtime, also for loggers cached before the change."""

from __future__ import annotations

import pytest
import structlog

from pulsar_cluster.logs import configure_logging, get_logger, set_log_level


def test_set_log_level_reaches_cached_loggers(capsys: pytest.CaptureFixture[str]) -> None:
    saved = structlog.get_config()
    configure_logging("warning")  # prints to the sys.stderr capsys installed
    try:
        log = get_logger("test.level")
        log.info("first_info")
        log.warning("first_warning")
        set_log_level("debug")
        log.debug("then_debug")
        set_log_level("error")
        log.warning("then_warning")
        log.error("then_error")
        err = capsys.readouterr().err
        assert "first_info" not in err and "first_warning" in err
        assert "then_debug" in err and "then_warning" not in err and "then_error" in err
        with pytest.raises(ValueError, match="unknown log level 'loud'"):
            set_log_level("loud")
    finally:
        structlog.configure(**saved)  # other tests' loggers must not print to capsys's file
        set_log_level("info")


def test_json_lines_render_what_the_stdlib_json_renders(capsys: pytest.CaptureFixture[str]) -> None:
    """orjson renders events; what it refuses (an integer beyond 64 bits) falls back to json,
    and objects it does not know are rendered by their repr, as before."""
    import json

    class Opaque:
        def __repr__(self) -> str:
            return "<opaque>"

    saved = structlog.get_config()
    configure_logging("info")
    try:
        log = get_logger("test.json")
        log.info("plain", n=3, ratio=0.5, by_int={1: "a"}, obj=Opaque(), text="é\n")
        log.info("huge", n=2**70)
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    finally:
        structlog.configure(**saved)
    plain, huge = lines
    assert plain["event"] == "plain" and plain["level"] == "info" and plain["n"] == 3
    assert plain["by_int"] == {"1": "a"} and plain["obj"] == "<opaque>" and plain["text"] == "é\n"
    assert huge["n"] == 2**70 and huge["timestamp"].endswith("Z")
