"""InfluxQL tokens: identifiers (bare or "quoted"), 'strings', numbers, durations, /regexes/.

A `/` starts a regex where InfluxQL expects one (after =~, !~, FROM, a comma inside FROM, WITH
KEY/MEASUREMENT operators), and is division elsewhere; the lexer decides from the previous token.
Positions are 0-based character offsets, reported 1-based as InfluxDB does ("at line 1, char 8").
"""

from __future__ import annotations

import re
from typing import NamedTuple

from pulsar_cluster.errors import QueryError

__all__ = ["Token", "tokenize", "parse_error"]


class Token(NamedTuple):
    """One token; a named tuple because a query makes dozens (a frozen dataclass is slower to
    build), immutable all the same."""

    kind: str  # IDENT, QIDENT, STRING, INTEGER, NUMBER, DURATION, REGEX, OP, EOF
    value: str
    pos: int

    def is_kw(self, *words: str) -> bool:
        return self.kind == "IDENT" and self.value.upper() in words

    def describe(self) -> str:
        return "EOF" if self.kind == "EOF" else self.value


def parse_error(text: str, pos: int, message: str) -> QueryError:
    line = text.count("\n", 0, pos) + 1
    char = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return QueryError(f"error parsing query: {message} at line {line}, char {char}")


def _regex_allowed(prev: Token | None, in_from: bool) -> bool:
    if prev is None:
        return False
    if prev.kind == "OP" and prev.value in ("=~", "!~"):
        return True
    if prev.is_kw("FROM", "MEASUREMENT", "BY"):
        return True
    return in_from and prev.kind == "OP" and prev.value in (",", ".")


def _quoted(text: str, i: int, quote: str) -> tuple[str, int]:
    out = []
    j = i + 1
    while j < len(text):
        c = text[j]
        if c == "\\" and j + 1 < len(text):
            nxt = text[j + 1]
            out.append(nxt if nxt in (quote, "\\") else {"n": "\n", "t": "\t"}.get(nxt, "\\" + nxt))
            j += 2
            continue
        if c == quote:
            return "".join(out), j + 1
        out.append(c)
        j += 1
    kind = "string" if quote == "'" else "identifier"
    raise parse_error(text, i, f"unterminated quoted {kind}")


#: One pass over the text: each alternative is one token class of the loop below (whitespace
#: and comments are skipped). `/` is left out: whether it starts a regex depends on the previous
#: token. Quoted strings with escapes or without their closing quote go to `_quoted`.
_TOKEN = re.compile(
    r"""\s*(?:
    (?P<comment>--[^\n]*)
    |(?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<duration>(?:[0-9]+(?:ns|us|µ|u|ms|s|m|h|d|w))+(?![A-Za-z0-9_]))
    |(?P<number>[0-9]+\.[0-9]*|\.[0-9]+)
    |(?P<integer>[0-9]+)
    |(?P<string>'[^'\\]*')
    |(?P<qident>"[^"\\]*")
    |(?P<op>=~|!~|!=|<>|<=|>=|::|[=<>+\-*%(),;.]))""",
    re.VERBOSE,
)
_SPACE = re.compile(r"\s*")
_KIND = {
    "ident": "IDENT",
    "duration": "DURATION",
    "number": "NUMBER",
    "integer": "INTEGER",
    "op": "OP",
}
#: Keywords after which a FROM clause has ended (a `/` is division again).
_FROM_ENDS = frozenset(("WHERE", "GROUP", "LIMIT", "ORDER", "WITH", "OFFSET", "SLIMIT"))


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    append = tokens.append
    match = _TOKEN.match
    i = 0
    n = len(text)
    in_from = False
    prev: Token | None = None
    while i < n:
        m = match(text, i)
        if m is None:  # end of text, or a token the pattern leaves to the code below
            i = _SPACE.match(text, i).end()  # type: ignore[union-attr]
            if i >= n:
                break
            c = text[i]
            if c == "/" and _regex_allowed(prev, in_from):
                prev, i = _regex(text, i)
            elif c == "'" or c == '"':  # noqa: PLR1714 - faster than a set for two
                value, i2 = _quoted(text, i, c)
                prev = Token("STRING" if c == "'" else "QIDENT", value, i)
                i = i2
            elif c == "/":
                prev = Token("OP", "/", i)
                i += 1
            else:
                raise parse_error(text, i, f"found {c}, expected a token")
            append(prev)
            continue
        group = m.lastgroup
        i = m.end()
        if group == "comment":
            continue
        value = m.group(group)  # type: ignore[arg-type]
        if group == "string" or group == "qident":  # noqa: PLR1714 - no escapes inside
            prev = Token("STRING" if group == "string" else "QIDENT", value[1:-1], i - len(value))
        else:
            prev = Token(_KIND[group], value, i - len(value))  # type: ignore[index]
            if group == "ident":
                upper = value.upper()
                if upper == "FROM":
                    in_from = True
                elif upper in _FROM_ENDS:
                    in_from = False
            elif value == ";":
                in_from = False
        append(prev)
    append(Token("EOF", "", n))
    return tokens


def _regex(text: str, i: int) -> tuple[Token, int]:
    """The /regex/ starting at i (`\\/` is a slash inside it) and the offset after it."""
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
    return Token("REGEX", "".join(buf), i), j + 1
