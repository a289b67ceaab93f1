"""StorageBackend.select_series on a real LocalNode: Prometheus matcher semantics (missing tag
reads as "", anchored regexes), checked against a naive filter."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.engine.engine import EngineOptions
from node.local import LocalNode
from pulsar_cluster.lineprotocol import format_line, parse_line_protocol
from pulsar_cluster.nodeapi import TagMatcher
from pulsar_cluster.series import split_series_key

SERIES = [
    {"job": "api", "instance": "a:1"},
    {"job": "api", "instance": "b:2", "env": "prod"},
    {"job": "db", "instance": "a:3"},
    {"instance": "c:4"},
    {"job": "apiserver", "instance": "d:5", "env": ""},
]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory):
    n = LocalNode(str(Path(tmp_path_factory.mktemp("sel")) / "d"), EngineOptions(fsync="never"))
    lines = [
        format_line("up", {k: v for k, v in tags.items() if v}, {"value": float(i)}, 1000 + i)
        for i, tags in enumerate(SERIES)
    ]
    lines.append("other,job=api value=1 5")
    asyncio.run(n.write(parse_line_protocol("\n".join(lines).encode(), "prom")))
    yield n
    asyncio.run(n.close())


def select(node: LocalNode, *matchers: TagMatcher) -> list[dict[str, str]]:
    got = asyncio.run(node.select_series("prom", "up", list(matchers), 0, 10**6))
    return sorted((split_series_key(s.key)[1] for s in got), key=lambda t: t["instance"])


def naive(*matchers: TagMatcher) -> list[dict[str, str]]:
    out = []
    for tags in SERIES:
        present = {k: v for k, v in tags.items() if v}
        ok = True
        for m in matchers:
            got = present.get(m.name, "")
            full = re.fullmatch(m.value, got, re.DOTALL) is not None
            ok &= {
                "=": got == m.value,
                "!=": got != m.value,
                "=~": full,
                "!~": not full,
            }[m.op]
        if ok:
            out.append(present)
    return sorted(out, key=lambda t: t["instance"])


def test_each_matcher_kind(node: LocalNode) -> None:
    assert [t["instance"] for t in select(node, TagMatcher("job", "=", "api"))] == ["a:1", "b:2"]
    assert [t["instance"] for t in select(node, TagMatcher("job", "=~", "api"))] == ["a:1", "b:2"]
    assert [t["instance"] for t in select(node, TagMatcher("job", "=~", "api.*"))] == [
        "a:1",
        "b:2",
        "d:5",
    ]
    assert [t["instance"] for t in select(node, TagMatcher("job", "!~", "api|db"))] == [
        "c:4",
        "d:5",
    ]
    # A missing tag reads as "": job="" selects the series without a job.
    assert [t["instance"] for t in select(node, TagMatcher("job", "=", ""))] == ["c:4"]
    assert [t["instance"] for t in select(node, TagMatcher("env", "!=", ""))] == ["b:2"]


def test_bad_regex_raises_before_reading(node: LocalNode) -> None:
    with pytest.raises(re.error):
        select(node, TagMatcher("job", "=~", "(unclosed"))


matcher = st.builds(
    TagMatcher,
    name=st.sampled_from(["job", "instance", "env", "nope"]),
    op=st.sampled_from(["=", "!=", "=~", "!~"]),
    value=st.sampled_from(
        ["", "api", "db", "prod", "a:1", "api.*", ".*", "a.*|c:4", "[ab]:.", ".+"]
    ),
)


@settings(max_examples=150, deadline=None)
@given(matchers=st.lists(matcher, max_size=3))
def test_agrees_with_naive_filter(node: LocalNode, matchers: list[TagMatcher]) -> None:
    assert select(node, *matchers) == naive(*matchers)
