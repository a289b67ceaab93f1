"""Regenerate remote_pb2.py and types_pb2.py from the upstream .proto files (`make proto`).

The .proto files under proto/ are copied verbatim from prometheus/prometheus `prompb/` (the
commit is in proto/UPSTREAM). They import gogoproto only for Go code generation options
(`[(gogoproto.nullable) = false]`), which mean nothing to Python; this script strips those, points
the `types.proto` import at this package, and runs the protoc bundled with the pinned
grpcio-tools (pyproject.toml, dev extra), so the output depends on nothing else installed.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

__all__ = ["main"]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent  # the repository: generated modules import pulsar_cluster.prometheus
PACKAGE_DIR = Path("pulsar_cluster") / "prometheus"
_GOGO_OPTION = re.compile(r"\s*\[\(gogoproto\.[a-z_]+\)\s*=\s*[a-z]+\]")


def _prepare(source: str) -> str:
    text = source.replace('import "gogoproto/gogo.proto";\n', "")
    text = _GOGO_OPTION.sub("", text)
    text = text.replace('import "types.proto";', f'import "{PACKAGE_DIR.as_posix()}/types.proto";')
    if "gogoproto" in text:
        raise SystemExit("an unknown gogoproto construct remains; update regenerate.py")
    return text


def main() -> int:
    from grpc_tools import protoc  # dev dependency, imported only here

    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / PACKAGE_DIR
        staged.mkdir(parents=True)
        for name in ("types.proto", "remote.proto"):
            (staged / name).write_text(_prepare((HERE / "proto" / name).read_text()))
        args = [
            "protoc",
            f"-I{tmp}",
            f"--python_out={ROOT}",
            f"--pyi_out={ROOT}",
            str(staged / "types.proto"),
            str(staged / "remote.proto"),
        ]
        return int(protoc.main(args))


if __name__ == "__main__":
    sys.exit(main())
