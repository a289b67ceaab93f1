"""A recursive-descent parser for the InfluxQL subset PulsarDB answers.

`parse_query(text)` returns one statement per `;`-separated part. A syntax error raises
QueryError("error parsing query: found X, expected Y at line L, char C"), InfluxDB's wording.
A statement InfluxQL has but PulsarDB does not (SHOW USERS, DROP RETENTION POLICY, SELECT
INTO, ...) is a QueryError naming it.
"""

from __future__ import annotations

from pulsar_cluster.errors import QueryError
from pulsar_cluster.query.influxql.ast import (
    BinOp,
    Call,
    DatabaseStatement,
    DeleteStatement,
    Duration,
    Expr,
    Ident,
    Literal,
    Regex,
    RetentionSpec,
    RetentionStatement,
    Select,
    Show,
    Source,
    Statement,
    Wildcard,
)
from pulsar_cluster.query.influxql.lexer import Token, parse_error, tokenize
from pulsar_cluster.query.influxql.shapes import ShapeCache
from pulsar_cluster.timeutil import parse_duration

__all__ = ["parse_query", "parse_query_fresh", "parse_expression", "SHAPES"]

_COMPARISONS = ("=", "!=", "<>", "<", "<=", ">", ">=", "=~", "!~")
#: Keywords that cannot be bare identifiers (quote them: "from").
_RESERVED = {
    "ALL", "ALTER", "AND", "AS", "ASC", "BY", "CREATE", "DELETE", "DESC", "DROP", "FILL",
    "FROM", "GRANT", "GROUP", "IN", "INTO", "LIMIT", "OFFSET", "ON", "OR", "ORDER", "REVOKE",
    "SELECT", "SHOW", "SLIMIT", "SOFFSET", "WHERE", "WITH",
}  # fmt: skip


#: Tokens that are a whole operand by themselves, unless the next token continues it.
_SIMPLE_OPERANDS = frozenset(
    ("IDENT", "QIDENT", "STRING", "INTEGER", "NUMBER", "DURATION", "REGEX")
)
_CONTINUES_OPERAND = frozenset(("+", "-", "*", "/", "%", "(", "::"))


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    # --- token helpers -------------------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind != "EOF":
            self.i += 1
        return tok

    def error(self, expected: str, tok: Token | None = None) -> QueryError:
        tok = tok or self.tok
        return parse_error(self.text, tok.pos, f"found {tok.describe()}, expected {expected}")

    def accept_kw(self, *words: str) -> bool:
        tok = self.tokens[self.i]
        if tok.kind == "IDENT" and tok.value.upper() in words:
            self.i += 1  # an IDENT is never EOF
            return True
        return False

    def expect_kw(self, word: str) -> None:
        if not self.accept_kw(word):
            raise self.error(word)

    def accept_op(self, op: str) -> bool:
        tok = self.tokens[self.i]
        if tok.kind == "OP" and tok.value == op:
            self.i += 1
            return True
        return False

    def expect_op(self, op: str) -> None:
        if not self.accept_op(op):
            raise self.error(op)

    def ident(self, what: str = "identifier") -> str:
        if self.tok.kind in ("IDENT", "QIDENT"):
            return self.advance().value
        raise self.error(what)

    def parse_duration(self, tok: Token) -> int:
        try:
            return parse_duration(tok.value)
        except ValueError:
            raise parse_error(self.text, tok.pos, f"invalid duration {tok.value}") from None

    def string(self) -> str:
        if self.tok.kind != "STRING":
            raise self.error("string")
        return self.advance().value

    def integer(self) -> int:
        if self.tok.kind != "INTEGER":
            raise self.error("integer")
        return int(self.advance().value)

    # --- statements ----------------------------------------------------------------------------

    def statements(self) -> list[Statement]:
        out: list[Statement] = []
        while True:
            while self.accept_op(";"):
                pass
            if self.tok.kind == "EOF":
                break
            out.append(self.statement())
            if self.tok.kind != "EOF" and not self.accept_op(";"):
                raise self.error(";")
        if not out:
            raise parse_error(self.text, len(self.text), "found EOF, expected SELECT, SHOW, ...")
        return out

    def statement(self) -> Statement:
        tok = self.tok
        if self.accept_kw("SELECT"):
            return self.select()
        if self.accept_kw("SHOW"):
            return self.show()
        if self.accept_kw("CREATE"):
            if self.accept_kw("DATABASE"):
                name = self.ident("database name")
                policy = None
                if self.accept_kw("WITH"):
                    policy = self.policy_clauses(("DURATION", "REPLICATION", "SHARD", "NAME"))
                    if policy == RetentionSpec():
                        raise self.error("DURATION, NAME, REPLICATION, SHARD")
                return DatabaseStatement("CREATE DATABASE", name, policy)
            if self.accept_kw("RETENTION"):
                return self.retention_policy("CREATE RETENTION POLICY")
            raise self._unsupported("CREATE " + self.tok.value.upper())
        if self.accept_kw("ALTER"):
            if self.accept_kw("RETENTION"):
                return self.retention_policy("ALTER RETENTION POLICY")
            raise self._unsupported("ALTER " + self.tok.value.upper())
        if self.accept_kw("DROP"):
            if self.accept_kw("DATABASE"):
                return DatabaseStatement("DROP DATABASE", self.ident("database name"))
            if self.accept_kw("SERIES"):
                sources, cond = self.delete_tail()
                if not sources and cond is None:
                    raise self.error("FROM or WHERE")
                return DeleteStatement("DROP SERIES", sources, cond)
            if self.accept_kw("MEASUREMENT"):
                name = self.ident("measurement name")
                return DeleteStatement("DROP MEASUREMENT", [Source(name)], None)
            if self.accept_kw("RETENTION"):
                return self.retention_policy("DROP RETENTION POLICY")
            raise self._unsupported("DROP " + self.tok.value.upper())
        if self.accept_kw("DELETE"):
            sources, cond = self.delete_tail()
            return DeleteStatement("DELETE", sources, cond)
        if tok.is_kw("GRANT", "REVOKE", "KILL", "EXPLAIN", "SET"):
            raise self._unsupported(tok.value.upper())
        raise self.error("SELECT, DELETE, SHOW, CREATE, DROP")

    def retention_policy(self, action: str) -> RetentionStatement:
        """`<name> ON <db>` and, for CREATE and ALTER, the policy clauses (RETENTION was read)."""
        self.expect_kw("POLICY")
        name = self.ident("retention policy name")
        self.expect_kw("ON")
        database = self.ident("database name")
        stmt = RetentionStatement(action, name, database)
        if action == "DROP RETENTION POLICY":
            return stmt
        stmt.spec = self.policy_clauses(("DURATION", "REPLICATION", "SHARD", "DEFAULT"))
        if action.startswith("CREATE"):
            # InfluxDB requires both for CREATE (ALTER needs at least one clause)
            if stmt.spec.duration_ns is None:
                raise self.error("DURATION")
            if stmt.spec.replication is None:
                raise self.error("REPLICATION")
        elif stmt.spec == RetentionSpec():
            raise self.error("DURATION, REPLICATION, SHARD, DEFAULT")
        return stmt

    def policy_clauses(self, allowed: tuple[str, ...]) -> RetentionSpec:
        """Any order, each at most once: DURATION d|INF, REPLICATION n, SHARD DURATION d,
        NAME ident, DEFAULT (only the words in `allowed`)."""
        spec = RetentionSpec()
        seen: set[str] = set()
        while self.tok.is_kw(*allowed) and self.tok.value.upper() not in seen:
            word = self.advance().value.upper()
            seen.add(word)
            if word == "DURATION":
                spec.duration_ns = self.policy_duration()
            elif word == "REPLICATION":
                tok = self.tok
                spec.replication = self.integer()
                if spec.replication < 1:
                    raise parse_error(
                        self.text,
                        tok.pos,
                        f"invalid value {tok.value}: must be 1 <= n <= 2147483647",
                    )
            elif word == "SHARD":
                self.expect_kw("DURATION")
                spec.shard_duration_ns = self.policy_duration()
            elif word == "NAME":
                spec.name = self.ident("retention policy name")
            else:
                spec.default = True
        return spec

    def policy_duration(self) -> int:
        tok = self.tok
        if tok.is_kw("INF"):
            self.advance()
            return 0
        if tok.kind != "DURATION":
            raise self.error("duration", tok)
        self.advance()
        return self.parse_duration(tok)

    def _unsupported(self, name: str) -> QueryError:
        return QueryError(f"statement not supported: {name.strip()}", statement=name.strip())

    def delete_tail(self) -> tuple[list[Source], Expr | None]:
        sources = self.sources() if self.accept_kw("FROM") else []
        cond = self.expr() if self.accept_kw("WHERE") else None
        return sources, cond

    def select(self) -> Select:
        fields: list[tuple[Expr, str | None]] = []
        while True:
            e = self.expr()
            alias = self.ident("alias") if self.accept_kw("AS") else None
            fields.append((e, alias))
            if not self.accept_op(","):
                break
        if self.tok.is_kw("INTO"):
            raise self._unsupported("SELECT ... INTO")
        self.expect_kw("FROM")
        stmt = Select(fields, self.sources())
        if self.accept_kw("WHERE"):
            stmt.condition = self.expr()
        if self.accept_kw("GROUP"):
            self.expect_kw("BY")
            self.dimensions(stmt)
        if self.accept_kw("FILL"):
            self.fill(stmt)
        if self.accept_kw("ORDER"):
            self.expect_kw("BY")
            name = self.ident("time")
            if name.lower() != "time":
                raise QueryError("error parsing query: only ORDER BY time supported at this time")
            if self.accept_kw("DESC"):
                stmt.descending = True
            else:
                self.accept_kw("ASC")
        while self.tok.is_kw("LIMIT", "OFFSET", "SLIMIT", "SOFFSET"):
            word = self.advance().value.upper()
            n = self.integer()
            if word == "LIMIT":
                stmt.limit = n
            elif word == "OFFSET":
                stmt.offset_rows = n
            elif word == "SLIMIT":
                stmt.slimit = n
            else:
                stmt.soffset = n
        if self.accept_kw("TZ"):
            self.expect_op("(")
            tz = self.advance()
            self.expect_op(")")
            if tz.kind != "STRING" or tz.value not in ("UTC", "Etc/UTC"):
                raise QueryError("tz() other than 'UTC' is not supported")
        return stmt

    def dimensions(self, stmt: Select) -> None:
        tags: list[str] | None = []
        while True:
            if self.tok.is_kw("TIME") and self.tokens[self.i + 1].value == "(":
                self.advance()
                self.expect_op("(")
                stmt.every = self.duration()
                if self.accept_op(","):
                    negative = self.accept_op("-")
                    stmt.offset = -self.duration() if negative else self.duration()
                self.expect_op(")")
            elif self.accept_op("*"):
                tags = None
            elif self.tok.kind == "REGEX":
                raise self._unsupported("GROUP BY /regex/")
            else:
                name = self.ident("time() or tag key")
                if tags is not None:
                    tags.append(name)
            if not self.accept_op(","):
                break
        stmt.group_tags = tags

    def duration(self) -> int:
        tok = self.tok
        if tok.kind != "DURATION":
            raise self.error("duration")
        self.advance()
        ns = self.parse_duration(tok)
        if ns <= 0:
            raise parse_error(self.text, tok.pos, "duration must be positive")
        return ns

    def fill(self, stmt: Select) -> None:
        self.expect_op("(")
        tok = self.advance()
        if tok.is_kw("NULL", "NONE", "PREVIOUS", "LINEAR"):
            stmt.fill = tok.value.lower()
        else:
            negative = False
            if tok.kind == "OP" and tok.value == "-":
                negative = True
                tok = self.advance()
            if tok.kind not in ("INTEGER", "NUMBER"):
                raise self.error("null, none, previous, linear or a number", tok)
            value: int | float = int(tok.value) if tok.kind == "INTEGER" else float(tok.value)
            stmt.fill, stmt.fill_value = "value", -value if negative else value
        self.expect_op(")")

    def sources(self) -> list[Source]:
        out = []
        while True:
            if self.tok.kind == "OP" and self.tok.value == "(":
                raise self._unsupported("subqueries (FROM (SELECT ...))")
            if self.tok.kind == "REGEX":
                out.append(Source(regex=self.advance().value))
            else:
                parts = [self.ident("measurement")]
                regex: str | None = None
                while self.accept_op("."):
                    if self.tok.kind == "REGEX":
                        regex = self.advance().value
                        break
                    parts.append(self.ident("measurement") if self.tok.kind != "OP" else "")
                if len(parts) + (regex is not None) > 3:
                    raise self.error("measurement")
                # db.rp.m, rp.m or m; the last part may be a /regex/
                names: list[str] = parts if regex is None else [*parts, ""]
                db = names[0] if len(names) == 3 else None
                rp = names[-2] if len(names) >= 2 else None
                if regex is not None:
                    out.append(
                        Source(regex=regex, database=db or None, retention_policy=rp or None)
                    )
                else:
                    out.append(Source(parts[-1], database=db or None, retention_policy=rp or None))
            if not self.accept_op(","):
                return out

    def show(self) -> Show:
        tok = self.tok
        if self.accept_kw("DATABASES"):
            return Show("databases")
        if self.accept_kw("MEASUREMENTS"):
            stmt = Show("measurements", database=self.on())
            if self.accept_kw("WITH"):
                self.expect_kw("MEASUREMENT")
                op = self.advance()
                if op.value not in ("=", "=~"):
                    raise self.error("= or =~", op)
                val = self.advance()
                if val.kind not in ("REGEX", "IDENT", "QIDENT"):
                    raise self.error("measurement name or regex", val)
                stmt.measurement_op = "=~" if val.kind == "REGEX" else "="
                stmt.measurement_value = val.value
            return self.show_tail(stmt)
        if self.accept_kw("TAG"):
            if self.accept_kw("KEYS"):
                stmt = Show("tag_keys", database=self.on())
                if self.accept_kw("FROM"):
                    stmt.sources = self.sources()
                return self.show_tail(stmt)
            if self.accept_kw("VALUES"):
                stmt = Show("tag_values", database=self.on())
                if self.accept_kw("FROM"):
                    stmt.sources = self.sources()
                self.expect_kw("WITH")
                self.expect_kw("KEY")
                self.with_key(stmt)
                return self.show_tail(stmt)
            raise self.error("KEYS or VALUES")
        if self.accept_kw("FIELD"):
            self.expect_kw("KEYS")
            stmt = Show("field_keys", database=self.on())
            if self.accept_kw("FROM"):
                stmt.sources = self.sources()
            return self.show_tail(stmt)
        if self.accept_kw("SERIES"):
            if self.tok.is_kw("CARDINALITY", "EXACT"):
                raise self._unsupported("SHOW SERIES CARDINALITY")
            stmt = Show("series", database=self.on())
            if self.accept_kw("FROM"):
                stmt.sources = self.sources()
            return self.show_tail(stmt)
        if self.accept_kw("RETENTION"):
            self.expect_kw("POLICIES")
            return Show("retention", database=self.on())
        if tok.kind == "IDENT":
            words = [self.advance().value.upper()]
            if self.tok.kind == "IDENT":
                words.append(self.tok.value.upper())
            raise self._unsupported("SHOW " + " ".join(words))
        raise self.error("DATABASES, MEASUREMENTS, TAG, FIELD, SERIES, RETENTION")

    def on(self) -> str | None:
        return self.ident("database name") if self.accept_kw("ON") else None

    def with_key(self, stmt: Show) -> None:
        if self.accept_kw("IN"):
            self.expect_op("(")
            keys = [self.ident("tag key")]
            while self.accept_op(","):
                keys.append(self.ident("tag key"))
            self.expect_op(")")
            stmt.key_op, stmt.key_values = "IN", keys
            return
        op = self.advance()
        if op.kind != "OP" or op.value not in ("=", "!=", "<>", "=~", "!~"):
            raise self.error("=, !=, =~, !~ or IN", op)
        stmt.key_op = "!=" if op.value == "<>" else op.value
        if stmt.key_op in ("=~", "!~"):
            if self.tok.kind != "REGEX":
                raise self.error("regex")
            stmt.key_values = [self.advance().value]
        else:
            stmt.key_values = [self.ident("tag key")]

    def show_tail(self, stmt: Show) -> Show:
        if self.accept_kw("WHERE"):
            stmt.condition = self.expr()
        while self.tok.is_kw("LIMIT", "OFFSET"):
            word = self.advance().value.upper()
            n = self.integer()
            if word == "LIMIT":
                stmt.limit = n
            else:
                stmt.offset = n
        return stmt

    # --- expressions ---------------------------------------------------------------------------

    def expr(self) -> Expr:
        left = self.and_expr()
        while self.accept_kw("OR"):
            left = BinOp("OR", left, self.and_expr())
        return left

    def and_expr(self) -> Expr:
        left = self.comparison()
        while self.accept_kw("AND"):
            left = BinOp("AND", left, self.comparison())
        return left

    def operand(self) -> Expr:
        """An operand of a comparison: `additive`, with a shortcut for the common case of one
        literal or identifier token not followed by arithmetic, a call or a cast (the same
        result, without descending through the precedence levels)."""
        tokens = self.tokens
        tok = tokens[self.i]
        if tok.kind in _SIMPLE_OPERANDS:
            nxt = tokens[self.i + 1]
            if nxt.kind != "OP" or nxt.value not in _CONTINUES_OPERAND:
                return self.primary()
        return self.additive()

    def comparison(self) -> Expr:
        left = self.operand()
        if self.accept_kw("IN"):  # the native API's `key IN ('a', 'b')`
            self.expect_op("(")
            values = [self.string()]
            while self.accept_op(","):
                values.append(self.string())
            self.expect_op(")")
            return BinOp("IN", left, Literal(tuple(values)))
        if self.tok.kind == "OP" and self.tok.value in _COMPARISONS:
            op = self.advance().value
            op = "!=" if op == "<>" else op
            right = self.operand()
            if op in ("=~", "!~") and not isinstance(right, Regex):
                raise self.error("regex", self.tokens[self.i - 1])
            return BinOp(op, left, right)
        return left

    def additive(self) -> Expr:
        left = self.multiplicative()
        while self.tok.kind == "OP" and self.tok.value in ("+", "-"):
            op = self.advance().value
            left = BinOp(op, left, self.multiplicative())
        return left

    def multiplicative(self) -> Expr:
        left = self.unary()
        while self.tok.kind == "OP" and self.tok.value in ("*", "/", "%"):
            op = self.advance().value
            left = BinOp(op, left, self.unary())
        return left

    def unary(self) -> Expr:
        if self.tok.kind == "OP" and self.tok.value == "-":
            self.advance()
            inner = self.unary()
            if isinstance(inner, Literal) and isinstance(inner.value, int | float):
                return Literal(-inner.value)
            if isinstance(inner, Duration):
                return Duration(-inner.ns, "-" + inner.text)
            return BinOp("-", Literal(0), inner)
        return self.primary()

    def primary(self) -> Expr:
        tok = self.tok
        if tok.kind == "OP" and tok.value == "(":
            self.advance()
            inner = self.expr()
            self.expect_op(")")
            return inner
        if tok.kind == "OP" and tok.value == "*":
            self.advance()
            return Wildcard()
        if tok.kind == "STRING":
            self.advance()
            return Literal(tok.value)
        if tok.kind == "INTEGER":
            self.advance()
            return Literal(int(tok.value))
        if tok.kind == "NUMBER":
            self.advance()
            return Literal(float(tok.value))
        if tok.kind == "DURATION":
            self.advance()
            return Duration(self.parse_duration(tok), tok.value)
        if tok.kind == "REGEX":
            self.advance()
            return Regex(tok.value)
        if tok.kind == "IDENT" and tok.value.lower() in ("true", "false"):
            self.advance()
            return Literal(tok.value.lower() == "true")
        if tok.kind == "IDENT" and tok.value.upper() in _RESERVED:
            raise self.error("identifier, string, number, bool")
        if tok.kind in ("IDENT", "QIDENT"):
            self.advance()
            if tok.kind == "IDENT" and self.tok.kind == "OP" and self.tok.value == "(":
                self.advance()
                args: list[Expr] = []
                if not self.accept_op(")"):
                    args.append(self.expr())
                    while self.accept_op(","):
                        args.append(self.expr())
                    self.expect_op(")")
                return Call(tok.value.lower(), tuple(args))
            cast = None
            if self.accept_op("::"):
                cast = self.ident("tag, field, float, integer, string, boolean").lower()
            return Ident(tok.value, cast)
        raise self.error("identifier, string, number, bool")


class _RecordingParser(_Parser):
    """The parser, noting which node it made of each literal token (for ShapeCache)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.made: dict[int, Expr] = {}

    def primary(self) -> Expr:
        i = self.i
        node = super().primary()
        if self.i == i + 1 and self.tokens[i].kind in _LITERAL_TOKENS:
            self.made[i] = node
        return node


_LITERAL_TOKENS = frozenset(("STRING", "INTEGER", "NUMBER", "DURATION"))


def _parse_fresh(text: str) -> list[Statement]:
    return _Parser(text).statements()


def _parse_recording(text: str) -> tuple[list[Statement], list[Token], dict[int, Expr]]:
    p = _RecordingParser(text)
    return p.statements(), p.tokens, p.made


#: Parsed SELECTs by shape (the text with its literals masked): see shapes.py.
SHAPES = ShapeCache(_parse_fresh, _parse_recording)


def parse_query(text: str) -> list[Statement]:
    if not text.strip():
        raise QueryError('missing required parameter "q"')
    return SHAPES.parse(text)


def parse_query_fresh(text: str) -> list[Statement]:
    """parse_query without the shape cache (what the cache must agree with)."""
    if not text.strip():
        raise QueryError('missing required parameter "q"')
    return _parse_fresh(text)


def parse_expression(text: str) -> Expr:
    """One expression (the native API's `where`); the whole text must be consumed."""
    p = _Parser(text)
    e = p.expr()
    if p.tok.kind != "EOF":
        raise p.error("AND, OR or end of expression")
    return e
