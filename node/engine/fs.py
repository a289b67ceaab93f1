"""The one door between the engine and the operating system's file system.

Every file the engine writes goes through a `FileSystem`, so that tests can inject faults (a torn
write, a failed fsync, a full disk) in one place. `OsFileSystem` is the real one.

Crash-safe file creation is spelled out once, in `write_atomic`: write to a temporary name,
fsync the file, rename over the final name, fsync the directory. A file that exists under its
final name is therefore complete; a `*.tmp` file is debris from a crash and may be deleted.
"""

from __future__ import annotations

import os
from typing import BinaryIO, Protocol

__all__ = ["FileSystem", "OsFileSystem", "TMP_SUFFIX"]

TMP_SUFFIX = ".tmp"


class FileSystem(Protocol):
    """File operations the engine needs. Methods raise OSError like the os module does."""

    def open_append(self, path: str) -> BinaryIO: ...
    def open_read(self, path: str) -> BinaryIO: ...
    def open_write(self, path: str) -> BinaryIO: ...
    def fsync(self, f: BinaryIO) -> None: ...
    def fsync_dir(self, path: str) -> None: ...
    def write_atomic(self, path: str, chunks: list[bytes]) -> None: ...
    def rename(self, src: str, dst: str) -> None: ...
    def remove(self, path: str) -> None: ...
    def listdir(self, path: str) -> list[str]: ...
    def truncate(self, path: str, size: int) -> None: ...
    def makedirs(self, path: str) -> None: ...
    def size(self, path: str) -> int: ...
    def link(self, src: str, dst: str) -> None: ...
    def exists(self, path: str) -> bool: ...


class OsFileSystem:
    """The real file system."""

    def open_append(self, path: str) -> BinaryIO:
        return open(path, "ab", buffering=0)

    def open_read(self, path: str) -> BinaryIO:
        return open(path, "rb", buffering=0)

    def open_write(self, path: str) -> BinaryIO:
        """A new file (truncated if it exists), buffered: used for temporary table files."""
        return open(path, "wb")

    def fsync(self, f: BinaryIO) -> None:
        f.flush()
        os.fsync(f.fileno())

    def fsync_dir(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def write_atomic(self, path: str, chunks: list[bytes]) -> None:
        tmp = path + TMP_SUFFIX
        with open(tmp, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        self.fsync_dir(os.path.dirname(path) or ".")

    def rename(self, src: str, dst: str) -> None:
        os.replace(src, dst)

    def remove(self, path: str) -> None:
        os.remove(path)

    def listdir(self, path: str) -> list[str]:
        return sorted(os.listdir(path))

    def truncate(self, path: str, size: int) -> None:
        with open(path, "r+b") as f:
            f.truncate(size)
            f.flush()
            os.fsync(f.fileno())

    def makedirs(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)

    def size(self, path: str) -> int:
        return os.path.getsize(path)

    def link(self, src: str, dst: str) -> None:
        """Hard link (snapshots): immutable files are shared, never copied."""
        os.link(src, dst)

    def exists(self, path: str) -> bool:
        return os.path.exists(path)
