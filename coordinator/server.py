"""Serving the coordinator's app (graceful shutdown and exit codes: pulsar_cluster/serving.py)."""

from __future__ import annotations

from fastapi import FastAPI

from pulsar_cluster.serving import serve as _serve

__all__ = ["serve"]


def serve(app: FastAPI, host: str, port: int, graceful_timeout_s: float = 30.0) -> None:
    _serve(app, host, port, "PulsarDB serving", graceful_timeout_s)
