"""coordinator/auth.py: the admin token guard and the loopback-only default."""

from __future__ import annotations

import ipaddress
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from coordinator.app import CoordinatorSettings, create_app
from coordinator.auth import check_admin_access, is_admin_path, is_loopback
from node.local import LocalNode

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

TOKEN_CHARS = st.characters(min_codepoint=33, max_codepoint=126)
tokens = st.text(TOKEN_CHARS, min_size=1, max_size=64)


@given(token=tokens, offered=tokens, host=st.sampled_from(["127.0.0.1", "10.0.0.7", None]))
def test_with_a_token_only_that_token_passes_from_anywhere(
    token: str, offered: str, host: str | None
) -> None:
    assert check_admin_access(token, f"Bearer {token}", host) is None
    assert check_admin_access(token, f"bearer   {token} ", host) is None
    denial = check_admin_access(token, f"Bearer {offered}", host)
    assert (denial is None) == (offered == token)
    if denial is not None:
        assert denial.status == 401
    missing = check_admin_access(token, None, host)
    assert missing is not None and missing.status == 401
    basic = check_admin_access(token, f"Basic {token}", host)
    assert basic is not None and basic.status == 401


@given(address=st.ip_addresses())
def test_without_a_token_only_loopback_clients_pass(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    denial = check_admin_access(None, None, str(address))
    mapped = getattr(address, "ipv4_mapped", None)
    loopback = address.is_loopback or (mapped is not None and mapped.is_loopback)
    assert (denial is None) == loopback
    if denial is not None:
        assert denial.status == 403 and "PULSAR_ADMIN_TOKEN" in denial.message
    # an empty token configures nothing: same as no token
    assert (check_admin_access("", "Bearer ", str(address)) is None) == loopback


def test_loopback_edge_cases() -> None:
    assert is_loopback("127.255.0.9") and is_loopback("::1") and is_loopback("::ffff:127.0.0.1")
    for host in (None, "", "testclient", "localhost.evil", "0.0.0.0", "::", "fe80::1%eth0"):
        assert not is_loopback(host), host


def test_admin_paths() -> None:
    assert is_admin_path("/api/v1/admin") and is_admin_path("/api/v1/admin/flush")
    for path in ("/api/v1/administrator", "/api/v1/write", "/health", "/api/v1/adminx/y"):
        assert not is_admin_path(path)


@contextmanager
def _client(tmp: Path, token: str | None, host: str) -> Iterator[TestClient]:
    app = create_app(LocalNode(str(tmp)), CoordinatorSettings(admin_token=token))
    with TestClient(app, client=(host, 40000)) as client:
        yield client


def test_app_with_token(tmp_path: Path) -> None:
    with _client(tmp_path, "s3cret", "10.1.2.3") as client:
        r = client.get("/api/v1/admin/status")
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        assert "Authorization: Bearer" in r.json()["error"]
        r = client.post("/api/v1/admin/flush", headers={"Authorization": "Bearer nope"})
        assert r.status_code == 401 and r.json() == {"error": "invalid admin token"}
        ok = client.get("/api/v1/admin/status", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and isinstance(ok.json(), dict)
        # the rest of the API is not guarded
        assert client.get("/health").status_code == 200
        assert client.get("/ready").status_code == 200
        w = client.post("/api/v1/write?db=a", content=b'{"measurement":"m","fields":{"v":1}}')
        assert w.status_code in (200, 204)


def test_app_without_token_is_loopback_only(tmp_path: Path) -> None:
    with _client(tmp_path / "a", None, "10.1.2.3") as remote:
        r = remote.post("/api/v1/admin/flush")
        assert r.status_code == 403 and "loopback" in r.json()["error"]
    with _client(tmp_path / "b", None, "127.0.0.1") as local:
        assert local.post("/api/v1/admin/flush").status_code == 200
