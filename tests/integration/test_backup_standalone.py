"""Backup, incremental backup, restore and point-in-time recovery of `pulsar standalone`.

Real processes and files: the server runs as a child process; `pulsar admin backup/restore`
run as the CLI does; the restored directory is served by a new server and compared point by
point with what was written.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx

from pulsar_cluster.backupclient import list_backups
from tests.support.processes import ServerProcess, pulsar_command

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z


def write(url: str, lines: list[str]) -> None:
    r = httpx.post(f"{url}/write", params={"db": "b"}, content="\n".join(lines), timeout=30)
    assert r.status_code == 204, r.text


def lines_for(step: int, n: int = 300, value_offset: float = 0.0) -> list[str]:
    """n points over 6 series and 2 partitions (days); step shifts the timestamps."""
    out = []
    for i in range(n):
        ts = T0 + (i % 2) * 86_400 * 10**9 + (step * n + i) * 10**9
        out.append(f"m,host=h{i % 6} v={i + step * 1000 + value_offset},n={i}i {ts}")
    return out


def points(url: str) -> dict[tuple[str, int], tuple[float, int]]:
    """Every point of measurement m: (host, time) -> (v, n)."""
    r = httpx.post(f"{url}/api/v1/query", json={"db": "b", "measurement": "m"}, timeout=30)
    assert r.status_code == 200, r.text
    out = {}
    for series in r.json()["series"]:
        cols = series["columns"]
        for row in series["values"]:
            rec = dict(zip(cols, row, strict=True))
            out[(series["tags"]["host"], rec["time"])] = (rec["v"], rec["n"])
    return out


def expected(*chunks: list[str]) -> dict[tuple[str, int], tuple[float, int]]:
    out = {}
    for chunk in chunks:
        for line in chunk:
            key, fields, ts = line.split(" ")
            f = dict(kv.split("=") for kv in fields.split(","))
            out[(key.split("host=")[1], int(ts))] = (float(f["v"]), int(f["n"][:-1]))
    return out


def delete_h0(url: str) -> None:
    """InfluxQL DELETE of every point of series host=h0 written so far."""
    q = "DELETE FROM m WHERE host = 'h0' AND time >= 0"
    r = httpx.post(f"{url}/query", params={"db": "b", "q": q}, timeout=30)
    assert r.status_code == 200 and "error" not in r.json()["results"][0], r.text


def without_h0(points: dict[tuple[str, int], tuple[float, int]]) -> dict:
    return {k: v for k, v in points.items() if k[0] != "h0"}


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [*pulsar_command(), "admin", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check:
        assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc


def flush(url: str) -> None:
    assert httpx.post(f"{url}/api/v1/admin/flush", timeout=30).status_code == 200


def test_backup_incremental_restore_and_pitr(tmp_path: Path) -> None:
    data, archive, dest = tmp_path / "data", tmp_path / "archive", tmp_path / "backups"
    server = ServerProcess(data, extra_args=["--wal-archive-dir", str(archive)]).start()
    try:
        a, b = lines_for(0), lines_for(1)
        write(server.url, a)
        flush(server.url)  # tables + an archived segment
        write(server.url, b)  # only in the WAL: the backup carries it as a WAL segment
        full = cli("backup", "--url", server.url, str(dest))
        assert "backup: " in full.stderr and " files, " in full.stderr  # progress on stderr
        c = lines_for(2)
        write(server.url, c)
        delete_h0(server.url)  # a delete between the backups: replayed by restore and PITR
        flush(server.url)
        d = lines_for(3)
        write(server.url, d)
        t_mid = time.time_ns()  # after d was acknowledged, before e was sent
        time.sleep(0.01)
        e = lines_for(3, value_offset=0.5)  # overwrites every point of d
        write(server.url, e)
        cli("backup", "--url", server.url, str(dest), "--incremental")
        assert os.listdir(data / "backup-checkpoints") == []  # no leaked hard links
        everything = points(server.url)
        assert everything == {**without_h0(expected(a, b, c)), **expected(e)}
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.proc.send_signal(signal.SIGTERM)  # flush: the last WAL segment is archived
            server.proc.wait(timeout=60)

    backups = list_backups(str(dest))
    assert len(backups) == 2 and backups[1].parent == backups[0].id
    inc = backups[1]
    stored = {f.stored_in for s in inc.shards for f in s.files}
    assert stored == {backups[0].id, inc.id}  # unchanged tables referenced, not copied
    assert not any(
        f.stored_in == inc.id and f.path.startswith("sst/") and f.path in {g.path for g in s0.files}
        for s in inc.shards
        for s0 in backups[0].shards
        for f in s.files
    )

    # Wipe and restore the newest backup: every point is back.
    restored = tmp_path / "restored"
    (restored / "lost+found").mkdir(parents=True)  # an empty volume's mount point
    out = cli("restore", str(dest), "--data-dir", str(restored))
    assert "verify: " in out.stderr and "restore: " in out.stderr  # progress on stderr
    assert not (restored / ".restoring").exists()
    server = ServerProcess(restored).start()
    try:
        assert points(server.url) == everything
        write(server.url, lines_for(9))  # and it takes new writes
        assert len(points(server.url)) == len(everything) + 300
    finally:
        server.stop()

    # Point in time: the full backup plus archived WAL up to t_mid: d present, e absent.
    pitr = tmp_path / "pitr"
    cli(
        "restore", str(dest), "--data-dir", str(pitr),
        "--until", str(t_mid), "--wal-archive", str(archive),
    )  # fmt: skip
    server = ServerProcess(pitr).start()
    try:
        assert points(server.url) == {**without_h0(expected(a, b, c)), **expected(d)}
    finally:
        server.stop()

    # An archived segment goes missing: PITR refuses instead of recovering inexactly.
    segments = sorted(os.listdir(archive))
    (archive / segments[-2]).unlink()
    out = cli(
        "restore", str(dest), "--data-dir", str(tmp_path / "pitr2"),
        "--until", str(t_mid), "--wal-archive", str(archive), check=False,
    )  # fmt: skip
    assert out.returncode == 1 and "lacks records" in out.stderr, out.stderr
    assert not (tmp_path / "pitr2").exists()


def test_corrupt_or_truncated_backup_is_refused(tmp_path: Path) -> None:
    data, dest = tmp_path / "data", tmp_path / "backups"
    server = ServerProcess(data).start()
    try:
        write(server.url, lines_for(0))
        flush(server.url)
        write(server.url, lines_for(1))
        cli("backup", "--url", server.url, str(dest))
    finally:
        server.stop()
    (manifest,) = list_backups(str(dest))
    files = [f for s in manifest.shards for f in s.files]
    sst = next(f for f in files if f.path.startswith("sst/"))
    wal = next(f for f in files if f.path.startswith("wal/"))
    sst_path = dest / manifest.id / "shard-0" / sst.path
    wal_path = dest / manifest.id / "shard-0" / wal.path

    raw = bytearray(sst_path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    sst_path.write_bytes(bytes(raw))
    target = tmp_path / "r1"
    out = cli("restore", str(dest), "--data-dir", str(target), check=False)
    assert out.returncode == 1
    assert "SHA-256 mismatch" in out.stderr and sst.path.split("/")[1] in out.stderr
    assert not target.exists() and not (tmp_path / "r1.restoring").exists()

    raw[len(raw) // 2] ^= 0x01
    sst_path.write_bytes(bytes(raw))  # repaired
    with open(wal_path, "r+b") as f:
        f.truncate(wal.size - 5)
    out = cli("restore", str(dest), "--data-dir", str(target), check=False)
    assert out.returncode == 1 and "size" in out.stderr, out.stderr
    assert not target.exists()

    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("data")
    out = cli("restore", str(dest), "--data-dir", str(tmp_path / "full"), check=False)
    assert out.returncode == 1 and "not empty" in out.stderr, out.stderr

    (dest / manifest.id / "BACKUP").write_bytes(b"PULSRBAK garbage")
    out = cli("restore", str(dest), "--data-dir", str(target), check=False)
    assert out.returncode == 1 and "backup manifest" in out.stderr, out.stderr
