"""Starting `pulsar standalone` for the query benchmarks (bench/cpu_query.py, bench/scan_query.py).

`start_standalone(data_dir, code)` runs it on 127.0.0.1 on a free port, in its own process group
(stop it with `os.killpg(proc.pid, signal.SIGTERM)`), and returns once `/ready` answers 200.
`code` is `DIR` (PYTHONPATH of the server: an A/B label's source tree) optionally followed by
`?NAME=VALUE&...` (its environment, e.g. PULSAR_ROLLUP_CACHE_MB=0).
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import time
from pathlib import Path

from bench.systems import free_port, pulsar_command

__all__ = ["start_standalone"]


def start_standalone(data_dir: str, code: str | None) -> tuple[subprocess.Popen[bytes], int]:
    env = dict(os.environ)
    if code and "?" in code:  # DIR?NAME=VALUE&...: environment of that server (PULSAR_* flags)
        code, _, extra = code.partition("?")
        env.update(item.split("=", 1) for item in extra.split("&"))  # type: ignore[misc]
    if code:
        env["PYTHONPATH"] = str(Path(code).resolve())
    port = free_port()
    cmd = [*pulsar_command(), "standalone", "--data-dir", data_dir, "--host", "127.0.0.1"]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd="/",
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/ready")
            if conn.getresponse().status == 200:
                conn.close()
                return proc, port
            conn.close()
        except OSError:
            pass
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGTERM)
    raise RuntimeError("server not ready")
