"""InfluxQL tokens: identifiers (bare or "quoted"), 'strings', numbers, durations, /regexes/.

A `/` starts a regex where InfluxQL expects one (after =~, !~, FROM, a comma inside FROM, WITH
KEY/MEASUREMENT operators), and is division elsewhere; the lexer decides from the previous token.
Positions are 0-based character offsets, reported 1-based as InfluxDB does ("at line 1, char 8").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pulsar_cluster.errors import QueryError

__all__ = ["Token", "tokenize", "parse_error"]

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


@dataclass(frozen=True, slots=True)
class Token:
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


def tokenize(text: str) -> list[Token]:
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
