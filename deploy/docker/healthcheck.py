"""Container health check: exit 0 when the PulsarDB process answers GET /health with 200.

The slim image has no curl, so Docker's HEALTHCHECK runs this with the image's Python. The URL is
`$PULSAR_HEALTHCHECK_URL` when set; otherwise `http://127.0.0.1:$PULSAR_PORT/health` with
PULSAR_PORT defaulting to 8080 (coordinator and standalone). A `pulsar node` container sets
PULSAR_HEALTHCHECK_URL=http://127.0.0.1:7100/health. Kubernetes ignores HEALTHCHECK and uses the
chart's probes instead. Only the standard library is used, so the check works whatever the venv.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

__all__ = ["health_url", "check"]


def health_url(environ: dict[str, str] | os._Environ[str] = os.environ) -> str:
    url = environ.get("PULSAR_HEALTHCHECK_URL")
    if url:
        return url
    return f"http://127.0.0.1:{environ.get('PULSAR_PORT', '8080')}/health"


def check(url: str, timeout_s: float = 2.5) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status == 200, f"{url}: HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return False, f"{url}: HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return False, f"{url}: {exc}"


if __name__ == "__main__":
    ok, message = check(health_url())
    print(message, file=sys.stderr)
    sys.exit(0 if ok else 1)
