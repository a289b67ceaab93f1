"""The parser's operand shortcut (one token, no arithmetic after it) against the full descent
through the precedence levels it skips: same statements, or the same error, for any text."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pulsar_cluster.errors import QueryError
from pulsar_cluster.query.influxql import parser
from pulsar_cluster.query.influxql.parser import parse_query

OPERANDS = ["host", '"q r"', "'s'", "42", "1.5", "10s", "/re/", "true", "now()", "time",
            "mean(x)", "x::field", "-", "(", ")", "FROM", "*"]  # fmt: skip
OPS = ["=", "!=", "<>", "<", ">=", "=~", "!~", "+", "-", "*", "/", "%", "AND", "OR", "IN", ","]
PIECE = st.one_of(st.sampled_from(OPERANDS), st.sampled_from(OPS))


def _outcome(text: str) -> Any:
    try:
        return parse_query(text)
    except QueryError as exc:
        return exc.message


class _FullDescent(parser._Parser):
    def operand(self) -> Any:
        return self.additive()


def _full_descent(text: str) -> Any:
    try:
        return _FullDescent(text).statements()
    except QueryError as exc:
        return exc.message


@settings(max_examples=500, deadline=None)
@given(st.lists(PIECE, min_size=1, max_size=12).map(" ".join))
def test_operand_shortcut_parses_like_the_full_descent(where: str) -> None:
    for text in (f"SELECT x FROM m WHERE {where}", f"SELECT {where} FROM m"):
        assert _outcome(text) == _full_descent(text)
