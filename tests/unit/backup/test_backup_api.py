"""The admin backup endpoints over a real LocalNode (in process): token guard, streaming,
errors as JSON, release; and the restore's choice of base backup."""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import pytest

from coordinator.app import CoordinatorSettings, create_app
from node.local import LocalNode
from node.restore import choose_backup
from pulsar_cluster.backupmanifest import BackupManifest, ShardBackup
from pulsar_cluster.errors import BadRequestError, NotFoundError

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

AUTH = {"Authorization": "Bearer s3cret"}


def test_checkpoint_stream_release_behind_the_admin_token(tmp_path: Path) -> None:
    node = LocalNode(str(tmp_path / "d"))
    app = create_app(node, CoordinatorSettings(admin_token="s3cret"))
    with TestClient(app, client=("10.0.0.9", 40000)) as client:
        w = client.post("/write?db=x", content=b"m,h=a v=1 1000\nm,h=b v=2 2000\n")
        assert w.status_code == 204
        assert client.post("/api/v1/admin/backup/checkpoints").status_code == 401
        made = client.post("/api/v1/admin/backup/checkpoints", headers=AUTH).json()
        assert made["mode"] == "standalone" and made["shard_count"] == 1
        shard = made["shards"]["0"]
        assert shard["applied_index"] == 1 and shard["max_accepted_ns"] > 0
        cid = shard["checkpoint"]
        for f in shard["files"]:
            url = f"/api/v1/admin/backup/checkpoints/{cid}/shards/0/files/{f['path']}"
            assert client.get(url).status_code == 401
            r = client.get(url, headers=AUTH)
            assert r.status_code == 200 and len(r.content) == f["size"]
            local = tmp_path / "d" / "backup-checkpoints" / cid / "shard-0" / f["path"]
            assert hashlib.sha256(r.content).digest() == hashlib.sha256(local.read_bytes()).digest()
        missing = client.get(
            f"/api/v1/admin/backup/checkpoints/{cid}/shards/0/files/sst/nope.sst", headers=AUTH
        )
        assert missing.status_code == 404 and "nope.sst" in missing.json()["error"]
        bad = client.get(
            f"/api/v1/admin/backup/checkpoints/{cid}/shards/0/files/..%2FMANIFEST", headers=AUTH
        )
        assert bad.status_code in (400, 404)
        r = client.post(
            "/api/v1/admin/backup/release", headers=AUTH, json={"checkpoints": [[None, cid]]}
        )
        assert r.json() == {"released": 1}
        assert os.listdir(tmp_path / "d" / "backup-checkpoints") == []
        r = client.post("/api/v1/admin/backup/release", headers=AUTH, json={"nope": 1})
        assert r.status_code == 400


def _manifest(backup_id: str, latest: int) -> BackupManifest:
    return BackupManifest(
        backup_id, None, latest, "standalone", 1, 1, None, (ShardBackup(0, None, 5, latest),)
    )


def test_choose_backup_for_a_point_in_time() -> None:
    backups = [_manifest("a", 100), _manifest("b", 200), _manifest("c", 300)]
    assert choose_backup(backups, None, None).id == "c"
    assert choose_backup(backups, None, 250).id == "b"
    assert choose_backup(backups, None, 200).id == "b"  # at T counts as before
    assert choose_backup(backups, "a", 250).id == "a"
    with pytest.raises(BadRequestError, match="before that time"):
        choose_backup(backups, None, 99)
    with pytest.raises(BadRequestError, match="after --until"):
        choose_backup(backups, "c", 250)
    with pytest.raises(NotFoundError):
        choose_backup(backups, "zz", None)
    with pytest.raises(NotFoundError):
        choose_backup([], None, None)
