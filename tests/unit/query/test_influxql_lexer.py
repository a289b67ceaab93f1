"""The InfluxQL lexer against the straightforward character loop it replaced (the reference).

The lexer runs once per query on the small-query hot path, so it is one regular expression over
the text; this reference is the original, one-character-at-a-time implementation. Both must give
the same tokens, or the same error, for any text.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pulsar_cluster.errors import QueryError
from pulsar_cluster.query.influxql.lexer import (
    Token,
    _quoted,
    _regex_allowed,
    parse_error,
    tokenize,
)

_DURATION = re.compile(r"(?:[0-9]+(?:ns|us|µ|u|ms|s|m|h|d|w))+(?![A-Za-z0-9_])")
_NUMBER = re.compile(r"[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+")
_DIGITS = "0123456789"
_BARE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPS = (
    "=~",
    "!~",
    "!=",
    "<>",
    "<=",
    ">=",
    "::",
    "=",
    "<",
    ">",
    "+",
    "-",
    "*",
    "/",
    "%",
    "(",
    ")",
    ",",
    ";",
    ".",
)


def reference_tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    in_from = False
    while i < len(text):
        c = text[i]
        if c.isspace():
            i += 1
            continue
        if text.startswith("--", i):  # comment to end of line
            nl = text.find("\n", i)
            i = len(text) if nl < 0 else nl
            continue
        prev = tokens[-1] if tokens else None
        if c == "/" and _regex_allowed(prev, in_from):
            j = i + 1
            buf = []
            while j < len(text) and text[j] != "/":
                if text[j] == "\\" and j + 1 < len(text) and text[j + 1] == "/":
                    buf.append("/")
                    j += 2
                    continue
                buf.append(text[j])
                j += 1
            if j >= len(text):
                raise parse_error(text, i, "unterminated regex")
            tokens.append(Token("REGEX", "".join(buf), i))
            i = j + 1
            continue
        if c == "'":
            value, i2 = _quoted(text, i, "'")
            tokens.append(Token("STRING", value, i))
            i = i2
            continue
        if c == '"':
            value, i2 = _quoted(text, i, '"')
            tokens.append(Token("QIDENT", value, i))
            i = i2
            continue
        if c in _DIGITS or (c == "." and i + 1 < len(text) and text[i + 1] in _DIGITS):
            m = _DURATION.match(text, i)
            if m:
                tokens.append(Token("DURATION", m.group(), i))
                i = m.end()
                continue
            m = _NUMBER.match(text, i)
            if m is None:  # unreachable: a digit or .digit always matches
                raise parse_error(text, i, f"found {c}, expected a number")
            kind = "NUMBER" if "." in m.group() else "INTEGER"
            tokens.append(Token(kind, m.group(), i))
            i = m.end()
            continue
        m = _BARE.match(text, i)
        if m:
            tok = Token("IDENT", m.group(), i)
            if tok.is_kw("FROM"):
                in_from = True
            elif tok.is_kw("WHERE", "GROUP", "LIMIT", "ORDER", "WITH", "OFFSET", "SLIMIT"):
                in_from = False
            tokens.append(tok)
            i = m.end()
            continue
        for op in _OPS:
            if text.startswith(op, i):
                tokens.append(Token("OP", op, i))
                if op == ";":
                    in_from = False
                i += len(op)
                break
        else:
            raise parse_error(text, i, f"found {c}, expected a token")
    tokens.append(Token("EOF", "", len(text)))
    return tokens


def _outcome(fn, text: str) -> list[Token] | str:  # type: ignore[no-untyped-def]
    try:
        return fn(text)  # type: ignore[no-any-return]
    except QueryError as exc:
        return exc.message


PIECES = st.sampled_from(
    ["SELECT", "select", "FROM", "from", "WHERE", "GROUP", "BY", "LIMIT", "WITH", "KEY", "=~",
     "!~", "!=", "<>", "<=", ">=", "::", "=", "<", ">", "+", "-", "*", "/", "%", "(", ")", ",",
     ";", ".", "'s'", "'it\\'s'", "'a\\nb'", "'open", '"q i"', '"x\\"y"', '"open', "/re/",
     "/a\\/b/", "10s", "1h30m", "5µ", "3us", "1.5", ".5", "1.", "42", "7x", "--c\n", "--c",
     " ", "\n", "\t", "\x1c", "\u00a0", "host_1", "_x", "é", "!", ":", "\\", "now()"]
)  # fmt: skip


@settings(max_examples=600, deadline=None)
@given(st.one_of(st.text(max_size=40), st.lists(PIECES, max_size=20).map("".join)))
def test_tokenize_matches_the_reference(text: str) -> None:
    assert _outcome(tokenize, text) == _outcome(reference_tokenize, text)


@pytest.mark.parametrize(
    "text",
    [
        "SELECT max(usage_user) FROM cpu WHERE (hostname = 'host_1') AND time >= "
        "'2026-01-01T00:00:00Z' AND time < '2026-01-01T01:00:00Z' GROUP BY time(1m)",
        'SELECT * FROM /cp.*/, "m" WHERE a =~ /x\\/y/ AND b / 2 > 1 -- note\n;SHOW TAG VALUES '
        "WITH KEY =~ /h/",
        'SELECT \'it\\\'s\' FROM "a""b"',
    ],
)
def test_tokenize_examples_match_the_reference(text: str) -> None:
    assert tokenize(text) == reference_tokenize(text)


def test_tokenize_reports_errors_with_positions() -> None:
    with pytest.raises(QueryError, match="unterminated quoted string at line 2, char 3"):
        tokenize("a\nb 'open")
    with pytest.raises(QueryError, match="found !, expected a token"):
        tokenize("a ! b")
    assert [t.kind for t in tokenize("x / 2")] == ["IDENT", "OP", "INTEGER", "EOF"]
    assert tokenize("a =~ /b/")[2] == Token("REGEX", "b", 5)
    assert re.fullmatch("x", "x")
