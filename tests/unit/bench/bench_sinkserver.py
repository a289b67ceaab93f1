"""A real HTTP server on 127.0.0.1 for the driver tests: records what it gets, answers as told."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["Sink", "sink_server"]


class Sink:
    def __init__(self, answer: Callable[[str, str, bytes, int], tuple[int, dict[str, str], bytes]]):
        self.answer = answer
        self.requests: list[tuple[str, str, bytes]] = []
        self.lock = threading.Lock()
        self.url = ""


@contextmanager
def sink_server(
    answer: Callable[[str, str, bytes, int], tuple[int, dict[str, str], bytes]],
) -> Iterator[Sink]:
    """`answer(method, path, body, request_number)` -> (status, headers, body)."""
    sink = Sink(answer)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like the servers under test

        def _serve(self) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else b""
            with sink.lock:
                sink.requests.append((self.command, self.path, body))
                number = len(sink.requests)
            status, headers, out = sink.answer(self.command, self.path, body, number)
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        do_GET = do_POST = _serve  # noqa: N815 - names fixed by http.server

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    sink.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
