"""InfluxDB compatibility against a real `pulsar standalone`: raw HTTP answers, exact error shapes,
malformed bodies that must write nothing, and the real client libraries (influxdb-client for the
v2 API, influxdb for v1) writing data that is then read back through the native query API."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import httpx
import pytest

from tests.support.processes import ServerProcess

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
LIMIT = 1024 * 1024  # --max-body-mb 1


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    proc = ServerProcess(
        Path(tmp_path_factory.mktemp("influx")) / "data", extra_args=["--max-body-mb", "1"]
    )
    proc.start()
    yield proc
    proc.stop()


def rows(url: str, db: str, measurement: str, where: str | None = None) -> list:
    """Every (tags, columns, values) of the measurement, via the native JSON query."""
    body: dict = {"db": db, "measurement": measurement, "start": 0, "end": 2**62}
    if where:
        body["where"] = where
    r = httpx.post(f"{url}/api/v1/query", json=body, timeout=10)
    assert r.status_code == 200, r.text
    return [(s["tags"], s["columns"], s["values"]) for s in r.json()["series"]]


def field_values(url: str, db: str, measurement: str, field: str) -> list:
    out = []
    for _tags, columns, values in rows(url, db, measurement):
        i = columns.index(field)
        out.extend((v[0], v[i]) for v in values if v[i] is not None)
    return sorted(out)


# --- ping, health ----------------------------------------------------------------------------


def test_ping_and_health_shapes(server: ServerProcess) -> None:
    for method in ("GET", "HEAD"):
        r = httpx.request(method, f"{server.url}/ping")
        assert r.status_code == 204 and r.content == b""
        assert r.headers["X-Influxdb-Version"].startswith("1.8")
        assert r.headers["X-Influxdb-Build"] == "OSS"
    r = httpx.get(f"{server.url}/ping", params={"verbose": "true"})
    assert r.status_code == 200 and r.json() == {"version": r.headers["X-Influxdb-Version"]}
    health = httpx.get(f"{server.url}/health").json()
    assert health["status"] == "pass" and health["checks"] == []
    assert {"name", "message", "version", "commit"} <= set(health)


# --- raw HTTP: success and errors, exactly -----------------------------------------------------


def test_v1_and_v2_success_is_204_without_body(server: ServerProcess) -> None:
    r = httpx.post(
        f"{server.url}/write", params={"db": "raw", "precision": "s"}, content=b"m f=1 5"
    )
    assert (r.status_code, r.content) == (204, b"")
    assert r.headers["X-Influxdb-Version"]
    r = httpx.post(
        f"{server.url}/api/v2/write",
        params={"bucket": "raw/autogen", "org": "o", "precision": "ms"},
        content=b"m f=2 6",
        headers={"Authorization": "Token anything"},
    )
    assert (r.status_code, r.content) == (204, b"")
    assert field_values(server.url, "raw", "m", "f") == [(6_000_000, 2.0), (5 * 10**9, 1.0)]
    # An empty body: InfluxDB 1.x says 204, 2.x says 400 "writing requires points".
    assert httpx.post(f"{server.url}/write", params={"db": "raw"}, content=b"").status_code == 204
    r = httpx.post(f"{server.url}/api/v2/write", params={"bucket": "raw"}, content=b"\n")
    assert r.status_code == 400
    assert r.json() == {"code": "invalid", "message": "writing requires points"}


def test_v1_parse_error_shape(server: ServerProcess) -> None:
    body = b"bad1 f=1\nbad1 f=\nbad1 f=3\n"
    r = httpx.post(f"{server.url}/write", params={"db": "raw"}, content=body)
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/json"
    doc = r.json()
    assert doc == {
        "error": "unable to parse 'bad1 f=': missing field value (line 2)",
        "line": 2,
    }
    assert r.headers["X-Influxdb-Error"] == doc["error"]
    assert rows(server.url, "raw", "bad1") == []  # all or nothing


def test_v2_parse_error_shape(server: ServerProcess) -> None:
    r = httpx.post(
        f"{server.url}/api/v2/write",
        params={"bucket": "raw", "org": "o"},
        content=b'bad2,host=a f=1i\nbad2,host=a f="s"\n',
    )
    assert r.status_code == 400
    assert r.headers["X-Platform-Error-Code"] == "invalid"
    doc = r.json()
    assert doc["code"] == "invalid" and doc["line"] == 2
    assert doc["message"].startswith("unable to parse 'bad2,host=a f=\"s\"': field 'f' is integer")
    assert rows(server.url, "raw", "bad2") == []


def test_missing_database_bucket_and_bad_precision(server: ServerProcess) -> None:
    r = httpx.post(f"{server.url}/write", content=b"m f=1")
    assert (r.status_code, r.json()) == (400, {"error": "database is required"})
    r = httpx.post(f"{server.url}/api/v2/write", params={"org": "o"}, content=b"m f=1")
    assert (r.status_code, r.json()) == (400, {"code": "invalid", "message": "bucket is required"})
    r = httpx.post(f"{server.url}/write", params={"db": "raw", "precision": "x"}, content=b"m f=1")
    assert r.status_code == 400 and "invalid precision" in r.json()["error"]
    r = httpx.post(
        f"{server.url}/api/v2/write", params={"bucket": "raw", "precision": "h"}, content=b"m f=1"
    )
    assert r.status_code == 400
    assert r.json()["message"] == "invalid precision; valid precision units are ns, us, ms, and s"


def test_unicode_in_a_bad_line_survives_the_error_header(server: ServerProcess) -> None:
    r = httpx.post(f"{server.url}/write", params={"db": "raw"}, content="mé,t=漢 f=x".encode())
    assert r.status_code == 400
    assert "mé,t=漢 f=x" in r.json()["error"]
    assert r.headers.raw  # the header was sent as UTF-8 bytes, not rejected


# --- malformed bodies write nothing ------------------------------------------------------------


def test_gzip_round_trip_and_bad_gzip(server: ServerProcess) -> None:
    body = "\n".join(f"gz,host=h{i % 3} f={i} {T0 + i}" for i in range(1000)).encode()
    for path, params in (("/write", {"db": "gz"}), ("/api/v2/write", {"bucket": "gz"})):
        r = httpx.post(
            f"{server.url}{path}",
            params=params,
            content=gzip.compress(body),
            headers={"Content-Encoding": "gzip"},
        )
        assert r.status_code == 204, r.text
    assert len(field_values(server.url, "gz", "gz", "f")) == 1000
    for path, params in (("/write", {"db": "gz"}), ("/api/v2/write", {"bucket": "gz"})):
        r = httpx.post(
            f"{server.url}{path}",
            params=params,
            content=b"gzbad f=1",  # says gzip, is not
            headers={"Content-Encoding": "gzip"},
        )
        assert r.status_code == 400, r.text
    truncated = gzip.compress(b"gzbad f=1\n" * 100)[:-12]
    r = httpx.post(
        f"{server.url}/write",
        params={"db": "gz"},
        content=truncated,
        headers={"Content-Encoding": "gzip"},
    )
    assert r.status_code == 400 and "gzip" in r.json()["error"]
    assert rows(server.url, "gz", "gzbad") == []


def test_unsupported_content_encoding_is_415(server: ServerProcess) -> None:
    r = httpx.post(
        f"{server.url}/write",
        params={"db": "raw"},
        content=b"enc f=1",
        headers={"Content-Encoding": "br"},
    )
    assert r.status_code == 415 and "Content-Encoding" in r.json()["error"]
    assert rows(server.url, "raw", "enc") == []


@pytest.mark.parametrize("ctype", ["application/json", "application/x-protobuf"])
def test_another_protocols_content_type_is_415(server: ServerProcess, ctype: str) -> None:
    for path, params in (("/write", {"db": "raw"}), ("/api/v2/write", {"bucket": "raw"})):
        r = httpx.post(
            f"{server.url}{path}",
            params=params,
            content=b"ctype f=1",
            headers={"Content-Type": ctype},
        )
        assert r.status_code == 415, r.text
    assert rows(server.url, "raw", "ctype") == []
    # What real clients send is accepted, as by InfluxDB.
    for ctype_ok in (
        "text/plain; charset=utf-8",
        "application/octet-stream",
        "application/x-www-form-urlencoded",
    ):
        r = httpx.post(
            f"{server.url}/write",
            params={"db": "raw"},
            content=b"ctype_ok f=1",
            headers={"Content-Type": ctype_ok},
        )
        assert r.status_code == 204, r.text


def test_oversized_body_is_413_v1_and_v2(server: ServerProcess) -> None:
    line = b"big,host=h1 f=1\n"
    body = line * (LIMIT // len(line) + 1)
    r = httpx.post(f"{server.url}/write", params={"db": "big"}, content=body)
    assert r.status_code == 413
    assert r.json()["error"] == "Request Entity Too Large"
    r = httpx.post(f"{server.url}/api/v2/write", params={"bucket": "big"}, content=body)
    assert r.status_code == 413
    assert r.json() == {
        "code": "request too large",
        "message": "unable to read data: points batch is too large",
    }
    assert rows(server.url, "big", "big") == []


def test_gzip_bomb_beyond_the_limit_is_413(server: ServerProcess) -> None:
    # 64 MB of one repeated line compresses to ~64 KB: small on the wire, huge inflated.
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = b"bomb,host=h1 f=1\n" * 4096
    bomb = b"".join(compressor.compress(chunk) for _ in range(64 * 1024 * 1024 // len(chunk)))
    bomb += compressor.flush()
    assert len(bomb) < LIMIT
    r = httpx.post(
        f"{server.url}/write",
        params={"db": "big"},
        content=bomb,
        headers={"Content-Encoding": "gzip"},
    )
    assert r.status_code == 413
    assert rows(server.url, "big", "bomb") == []


# --- real client libraries ---------------------------------------------------------------------


def test_influxdb_client_v2_synchronous_and_batching(server: ServerProcess) -> None:
    from influxdb_client import InfluxDBClient, Point, WritePrecision
    from influxdb_client.client.exceptions import InfluxDBError
    from influxdb_client.client.write_api import SYNCHRONOUS, WriteOptions

    with InfluxDBClient(url=server.url, token="user:pass", org="-") as client:
        assert client.ping() is True
        assert client.version().startswith("1.8")
        sync = client.write_api(write_options=SYNCHRONOUS)
        sync.write(
            bucket="v2db/autogen",
            record=[
                Point("weather")
                .tag("station", "a b,c=d")
                .field("temp", 21.5)
                .field("n", 3)
                .field("ok", True)
                .field("note", 'quote " and \\ backslash')
                .time(T0, WritePrecision.NS),
                "weather,station=plain temp=1.25 1767225601000000000",
            ],
        )
        with pytest.raises(InfluxDBError) as info:
            sync.write(bucket="v2db", record="weather temp=oops")
        assert info.value.response.status == 400
        assert "unable to parse 'weather temp=oops'" in info.value.message

        # Batching mode: many points, flushed in batches of 100 on close.
        batching = client.write_api(
            write_options=WriteOptions(batch_size=100, flush_interval=200, max_retries=0)
        )
        batching.write(
            bucket="v2db",
            record=[
                Point("batched")
                .tag("host", f"h{i % 4}")
                .field("v", float(i))
                .time(T0 + i, WritePrecision.NS)
                for i in range(1000)
            ],
        )
        batching.close()

    got = rows(server.url, "v2db", "weather", where="station = 'a b,c=d'")
    assert len(got) == 1
    tags, columns, values = got[0]
    assert tags == {"station": "a b,c=d"}
    record = dict(zip(columns, values[0], strict=True))
    assert record == {
        "time": T0,
        "temp": 21.5,
        "n": 3,
        "ok": True,
        "note": 'quote " and \\ backslash',
    }
    assert field_values(server.url, "v2db", "weather", "temp")[0] == (T0, 21.5)
    batched = field_values(server.url, "v2db", "batched", "v")
    assert [v for _, v in batched] == [float(i) for i in range(1000)]


def test_influxdb_v1_client_writes_and_reports_errors(server: ServerProcess) -> None:
    from influxdb import InfluxDBClient
    from influxdb.exceptions import InfluxDBClientError

    client = InfluxDBClient(host="127.0.0.1", port=server.port, database="v1db", timeout=10)
    try:
        assert client.ping().startswith("1.8")
        assert client.write_points(
            [
                {
                    "measurement": "cpu load",
                    "tags": {"host": "server=01", "region": "us,west"},
                    "time": T0,
                    "fields": {"value": 0.64, "count": 7, "up": False, "msg": "x=1, y"},
                }
            ]
        )
        assert client.write_points(
            [f"cpu2,host=h{i} value={i} {T0 // 10**6 + i}" for i in range(50)],
            time_precision="ms",
            protocol="line",
            retention_policy="autogen",
        )
        with pytest.raises(InfluxDBClientError) as info:
            client.write_points(["cpu3 value=1", "cpu3 value"], protocol="line")
        assert info.value.code == 400
        assert "unable to parse 'cpu3 value'" in str(info.value.content)
    finally:
        client.close()

    # The query side of the v1 library, through /query (InfluxQL).
    client = InfluxDBClient(host="127.0.0.1", port=server.port, database="v1db", timeout=10)
    try:
        assert {"name": "v1db"} in client.get_list_database()
        assert {"name": "cpu load"} in client.get_list_measurements()
        result = client.query(
            'SELECT "value", "count", "msg" FROM "cpu load" WHERE "host" = \'server=01\'',
            epoch="ns",
        )
        assert list(result.get_points()) == [
            {"time": T0, "value": 0.64, "count": 7, "msg": "x=1, y"}
        ]
        total = client.query('SELECT count("value") FROM "cpu2"', epoch="ns")
        assert next(total.get_points())["count"] == 50
    finally:
        client.close()

    ((tags, columns, values),) = rows(server.url, "v1db", "cpu load")
    assert tags == {"host": "server=01", "region": "us,west"}
    assert dict(zip(columns, values[0], strict=True)) == {
        "time": T0,
        "value": 0.64,
        "count": 7,
        "up": False,
        "msg": "x=1, y",
    }
    assert len(rows(server.url, "v1db", "cpu2")) == 50
    assert field_values(server.url, "v1db", "cpu2", "value")[:2] == [
        (T0, 0.0),
        (T0 + 1_000_000, 1.0),
    ]
    assert rows(server.url, "v1db", "cpu3") == []


def test_database_names_with_nul_are_refused(server: ServerProcess) -> None:
    r = httpx.post(f"{server.url}/write", params={"db": "a\x00b"}, content=b"m f=1")
    assert r.status_code == 400 and "NUL" in r.json()["error"]
    r = httpx.post(f"{server.url}/api/v2/write", params={"bucket": "a\x00b"}, content=b"m f=1")
    assert r.status_code == 400 and "NUL" in r.json()["message"]
    r = httpx.post(
        f"{server.url}/api/v1/write",
        params={"db": "a\x00b"},
        json={"measurement": "m", "fields": {"f": 1}},
    )
    assert r.status_code == 400
    r = httpx.post(f"{server.url}/api/v1/prom/write", params={"db": "a\x00b"}, content=b"")
    assert r.status_code == 400
    assert rows(server.url, "a", "m") == []


def test_client_libraries_with_gzip(server: ServerProcess) -> None:
    from influxdb import InfluxDBClient as V1Client
    from influxdb_client import InfluxDBClient
    from influxdb_client.client.write_api import SYNCHRONOUS

    with InfluxDBClient(url=server.url, token="t", org="o", enable_gzip=True) as client:
        client.write_api(write_options=SYNCHRONOUS).write(
            bucket="gzc", record=[f"zipped,lib=v2 v={i} {T0 + i}" for i in range(200)]
        )
    v1 = V1Client(host="127.0.0.1", port=server.port, database="gzc", gzip=True, timeout=10)
    try:
        v1.write_points([f"zipped,lib=v1 v={i} {T0 + i}" for i in range(200)], protocol="line")
    finally:
        v1.close()
    got = {s[0]["lib"]: len(s[2]) for s in rows(server.url, "gzc", "zipped")}
    assert got == {"v1": 200, "v2": 200}
