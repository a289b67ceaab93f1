"""Structured logging (structlog): JSON lines on stderr by default, one event name per line."""

from __future__ import annotations

import json as stdlib_json
import logging
import sys
from typing import Any

import orjson
import structlog

__all__ = ["configure_logging", "get_logger", "set_log_level", "check_log_level", "LOG_LEVELS"]

#: Accepted level names and their numbers (the stdlib's).
LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
_METHOD_LEVELS = {**LOG_LEVELS, "warn": logging.WARNING, "exception": logging.ERROR}


class _Threshold:
    """The current minimum level. A processor checks it per event, instead of structlog's
    filtering logger, because loggers are cached on first use with the level they were made
    with: a reload (SIGHUP, POST /api/v1/admin/reload) must reach them too."""

    level = logging.INFO


def check_log_level(level: str) -> int:
    """The number of a level name; ValueError naming the choices for an unknown one."""
    try:
        return LOG_LEVELS[level.lower()]
    except KeyError:
        raise ValueError(f"unknown log level '{level}': use {', '.join(LOG_LEVELS)}") from None


def set_log_level(level: str) -> None:
    """Change the level of every logger at once (ValueError for an unknown name)."""
    _Threshold.level = check_log_level(level)


def _drop_below_level(_: Any, method_name: str, event_dict: Any) -> Any:
    if _METHOD_LEVELS.get(method_name, logging.CRITICAL) < _Threshold.level:
        raise structlog.DropEvent
    return event_dict


def _orjson_dumps(event_dict: Any, default: Any = None) -> str:
    # orjson renders an event about ten times faster than the stdlib's json (every request
    # logs one); OPT_NON_STR_KEYS keeps dicts with int keys loggable, as json.dumps does.
    try:
        return orjson.dumps(event_dict, default=default, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # what orjson refuses (an integer beyond 64 bits): the stdlib renders it
        return stdlib_json.dumps(event_dict, default=default)


def configure_logging(level: str = "info", json: bool = True) -> None:
    set_log_level(level)
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_orjson_dumps)
        if json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            _drop_below_level,
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
