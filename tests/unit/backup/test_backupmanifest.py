"""Backup manifest codec: round trip, and every damage is refused with CorruptionError."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pulsar_cluster.backupmanifest import (
    BackupFile,
    BackupManifest,
    ShardBackup,
    check_file_path,
    decode_manifest,
    encode_manifest,
)
from pulsar_cluster.errors import CorruptionError

ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,20}", fullmatch=True).filter(
    lambda s: ".." not in s
)
names = st.from_regex(r"[A-Za-z0-9_\-]{1,20}", fullmatch=True)
paths = st.one_of(
    st.just("MANIFEST"),
    names.map(lambda n: f"sst/{n}.sst"),
    names.map(lambda n: f"wal/{n}.wal"),
)
u63 = st.integers(0, 2**63 - 1)


@st.composite
def manifests(draw: st.DrawFn) -> BackupManifest:
    count = draw(st.integers(1, 5))
    shards = []
    for shard in range(count):
        files_paths = draw(st.lists(paths, max_size=6, unique=True))
        files = tuple(
            BackupFile(
                p,
                draw(u63),
                draw(st.from_regex(r"[0-9a-f]{64}", fullmatch=True)),
                draw(st.text(max_size=40)),
                draw(ids),
            )
            for p in files_paths
        )
        node = draw(st.one_of(st.none(), names))
        shards.append(ShardBackup(shard, node, draw(u63), draw(u63), files))
    mode = draw(st.sampled_from(["standalone", "cluster"]))
    shard_map = draw(st.one_of(st.none(), st.just({"version": 1, "shard_count": count})))
    return BackupManifest(
        draw(ids),
        draw(st.one_of(st.none(), ids)),
        draw(u63),
        mode,
        count,
        draw(st.integers(1, 5)),
        shard_map,
        tuple(shards),
    )


@settings(max_examples=80, deadline=None)
@given(manifests())
def test_round_trip(manifest: BackupManifest) -> None:
    assert decode_manifest(encode_manifest(manifest)) == manifest


@settings(max_examples=80, deadline=None)
@given(manifests(), st.data())
def test_any_flipped_byte_or_truncation_is_refused(manifest: BackupManifest, data) -> None:  # type: ignore[no-untyped-def]
    raw = bytearray(encode_manifest(manifest))
    pos = data.draw(st.integers(0, len(raw) - 1))
    flipped = bytearray(raw)
    flipped[pos] ^= data.draw(st.integers(1, 255))
    with pytest.raises(CorruptionError):
        decode_manifest(bytes(flipped))
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(CorruptionError):
        decode_manifest(bytes(raw[:cut]))


@pytest.mark.parametrize(
    "path", ["../x.sst", "sst/../../etc.sst", "/abs", "sst/a/b.sst", "wal/x.txt", "MANIFEST2", ""]
)
def test_unsafe_paths_are_refused(path: str) -> None:
    with pytest.raises(ValueError):
        check_file_path(path)


def test_body_that_breaks_the_rules_is_corruption() -> None:
    good = BackupManifest("a", None, 1, "cluster", 2, 3, None, (ShardBackup(0, "n", 1, 1),))
    with pytest.raises(CorruptionError, match="do not match count"):
        decode_manifest(encode_manifest(good))  # shard 1 missing
