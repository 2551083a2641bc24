r"""The PostgreSQL-wire SQL endpoint of ``govlake serve`` (``--sql-port``, default 5433, loopback by default).

Analysts connect with psql, DBeaver, Superset or an ODBC driver *as themselves*: every connection
authenticates (password or API token, ``identities.authenticate(..., channel="pgwire")``) and gets its own
``SqlSession`` built for that Principal, and every statement goes through ``session.query`` — the same
read-only sandbox, grants, row scope, column masks and audit as ``govlake sql``. Nothing here grants
anything: this module only speaks the protocol.

Library choice. We use **buenavista 0.5.0** (pure Python, socketserver based) for the protocol plumbing:
message framing, startup/SSL negotiation, the Parse/Bind/Describe/Execute/Sync state machine's helpers.
**riffq 0.1.11** was evaluated first (Rust, faster), but it ships no wheel for this platform and its sdist
needs crates.io and GitHub at build time, which a city data centre's build hosts cannot reach. buenavista's
handler cannot be used as is, so ``GovlakeHandler`` subclasses it and replaces:

* authentication: buenavista does MD5 over a dict of plaintext passwords, unusable with argon2 hashes. We
  request ``AuthenticationCleartextPassword`` (code 3) and verify with ``identities.authenticate``. The
  password crosses the socket in clear, which is why the endpoint listens on loopback unless ``--sql-host``
  is given explicitly, and why production puts TLS in front (a TLS-terminating proxy such as stunnel or
  HAProxy, or an SSH tunnel; see docs/security.md). A refusal is a FATAL ErrorResponse (SQLSTATE 28P01) with
  one generic Chinese message, then the connection is closed.
* its "JSON extension" path (any query ending in ``}`` was ``json.loads``-ed and dispatched): removed.
* its logging of every SQL text and connection parameter at INFO (personal data in literals): its logger is
  silenced and no method of ours logs SQL text; unexpected errors are logged by type and stack frames only.
* its error messages (``str(exception)``, Python internals to the client): every error is an ErrorResponse
  with severity, SQLSTATE (42501 access denied, 42601 query error, 57014 interrupted, 25P02 aborted
  transaction, 08P01 protocol violation, XX000 internal) and our Chinese message and hint. Never a traceback.
* result encoding: buenavista converts value by value through Python; we map Arrow types to PostgreSQL OIDs
  (int2/int4/int8, float4/float8, numeric, text, bool, date, time, timestamp, timestamptz, bytea, json,
  interval) and encode whole columns with pyarrow compute, in text or binary format as the client asks.
* parameters: buenavista parses every untyped text parameter as a date (``dateutil``); we inline each
  ``$n`` as a typed SQL literal (the audit then masks it like any literal).

Session commands clients send on connect (SET, RESET, BEGIN/COMMIT/ROLLBACK, SAVEPOINT, DISCARD, DEALLOCATE,
SHOW of a protocol parameter such as ``transaction isolation level``) are answered here and never reach
DuckDB (whose configuration is locked); they touch no data and are not audited. Everything else reaches
DuckDB through the session, which has ``information_schema`` and ``pg_catalog`` of its own (listing only the
principal's tables). Dialect: DuckDB's parser is PostgreSQL's, so the text is sent as is; only in
statements naming ``pg_catalog`` are psql's catalog idioms DuckDB lacks rewritten (``OPERATOR(pg_catalog.~)``,
``COLLATE pg_catalog.default``, ``::regtype``, ``pg_get_userbyid``, three-argument ``pg_get_expr``,
``array_upper``; the session's views shown as tables in ``pg_class``; empty stand-ins for ``pg_policy``,
``pg_inherits``, ``pg_publication``, ``pg_statistic_ext``, ``pg_roles``), which is what makes ``\dt`` and
``\d table`` work. sqlglot (read ``postgres``, write ``duckdb``) is used only when DuckDB's parser refuses a
statement: transpiling every statement would change the meaning of DuckDB-valid SQL that analysts copy from
``govlake sql``. Either way the result is still admitted (or refused) by the session.
"""

from __future__ import annotations

import logging
import re
import secrets
import socket
import socketserver
import struct
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import sqlglot
from buenavista.postgres import BuenaVistaHandler, BuenaVistaServer, BVBuffer, ClientCommand, ServerResponse
from sqlglot.dialects.postgres import Postgres
from sqlglot.tokens import TokenType

from govlake.context import Context
from govlake.errors import AccessDenied, ConfigError, GovlakeError, QueryError

log = logging.getLogger("govlake.pgwire")
for _name in ("buenavista", "buenavista.postgres"):  # it logs every SQL text at INFO: never let it
    logging.getLogger(_name).setLevel(logging.CRITICAL + 1)
    logging.getLogger(_name).propagate = False

DEFAULT_SQL_PORT = 5433
MAX_MESSAGE = 1 << 28  # a message longer than 256 MiB is a hostile or broken client
ROW_BATCH = 32768      # rows encoded at a time (bounded memory whatever the result size)
MAX_PASSWORD_MESSAGE = 4096  # before authentication: a password or a token, never more
STARTUP_TIMEOUT_S = 30.0     # startup + authentication must finish within this
MAX_CONNECTIONS = 64         # concurrent connections per endpoint (each holds a DuckDB session)
REVALIDATE_S = 30.0    # a long-lived connection re-reads its account and grants at least this often

SSL_REQUEST, GSS_REQUEST, CANCEL_REQUEST, PROTOCOL_3 = 80877103, 80877104, 80877102, 196608
AUTH_OK, AUTH_CLEARTEXT = 0, 3


# -- errors -------------------------------------------------------------------------------------------------
@dataclass
class PgError(Exception):
    """What the client sees: severity, SQLSTATE, message, hint, detail (all ours, in Chinese)."""

    sqlstate: str
    message: str
    hint: str | None = None
    detail: str | None = None
    severity: str = "ERROR"

    def fields(self) -> list[tuple[bytes, str]]:
        out = [(b"S", self.severity), (b"V", self.severity), (b"C", self.sqlstate), (b"M", self.message)]
        if self.detail:
            out.append((b"D", self.detail))
        if self.hint:
            out.append((b"H", self.hint))
        return out


def sqlstate_of(exc: GovlakeError) -> str:
    """The SQLSTATE of one of our errors (imported lazily: QueryInterrupted lives in access.sql)."""
    from govlake.access.sql import QueryInterrupted

    if isinstance(exc, QueryInterrupted):
        return "57014"  # query_canceled
    if isinstance(exc, AccessDenied):
        return "42501"  # insufficient_privilege
    if isinstance(exc, QueryError):
        return "42601"  # syntax_error (or another mistake in the statement the user can fix)
    return "XX000"


def pg_error(exc: BaseException) -> PgError:
    if isinstance(exc, PgError):
        return exc
    if isinstance(exc, GovlakeError):
        return PgError(sqlstate_of(exc), exc.message, hint=exc.hint, detail=exc.where)
    return PgError("XX000", "服务器内部错误，查询未完成", hint="请重试；如仍失败请联系系统管理员（服务端日志有记录）")


def log_internal(exc: BaseException) -> None:
    """An unexpected failure, logged by type and stack frames only: its message may quote SQL literals."""
    frames = "".join(traceback.format_tb(exc.__traceback__))
    log.error("pg-wire internal error %s\n%s", type(exc).__name__, frames)


# -- types --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PgType:
    oid: int
    size: int  # typlen (-1 variable)
    name: str


INT2, INT4, INT8 = PgType(21, 2, "int2"), PgType(23, 4, "int4"), PgType(20, 8, "int8")
FLOAT4, FLOAT8, NUMERIC = PgType(700, 4, "float4"), PgType(701, 8, "float8"), PgType(1700, -1, "numeric")
TEXT, BOOL, BYTEA, JSON = PgType(25, -1, "text"), PgType(16, 1, "bool"), PgType(17, -1, "bytea"), PgType(114, -1, "json")
DATE, TIME = PgType(1082, 4, "date"), PgType(1083, 8, "time")
TIMESTAMP, TIMESTAMPTZ, INTERVAL = PgType(1114, 8, "timestamp"), PgType(1184, 8, "timestamptz"), PgType(1186, 16, "interval")

PG_EPOCH_DAYS = 10957                 # 2000-01-01 as days since 1970-01-01
PG_EPOCH_US = PG_EPOCH_DAYS * 86_400_000_000
NULL_CELL = b"\xff\xff\xff\xff"       # length -1


def pg_type(t: pa.DataType) -> PgType:
    """The PostgreSQL type a column of Arrow type ``t`` is sent as."""
    if pa.types.is_dictionary(t):
        return pg_type(t.value_type)
    checks: list[tuple[Callable[[pa.DataType], bool], PgType]] = [
        (pa.types.is_boolean, BOOL),
        (lambda x: x in (pa.int8(), pa.int16(), pa.uint8()), INT2),
        (lambda x: x in (pa.int32(), pa.uint16()), INT4),
        (lambda x: x in (pa.int64(), pa.uint32()), INT8),
        (pa.types.is_integer, NUMERIC),  # uint64 may exceed int8
        (lambda x: x in (pa.float16(), pa.float32()), FLOAT4),
        (pa.types.is_floating, FLOAT8),
        (pa.types.is_decimal, NUMERIC),
        (pa.types.is_date, DATE),
        (pa.types.is_time, TIME),
        (lambda x: pa.types.is_timestamp(x) and x.tz is not None, TIMESTAMPTZ),
        (pa.types.is_timestamp, TIMESTAMP),
        (lambda x: pa.types.is_binary(x) or pa.types.is_large_binary(x) or pa.types.is_fixed_size_binary(x), BYTEA),
        (lambda x: pa.types.is_interval(x) or pa.types.is_duration(x), INTERVAL),
        (pa.types.is_nested, JSON),
    ]
    return next((pg for test, pg in checks if test(t)), TEXT)


def _cell(v: bytes) -> bytes:
    return len(v).to_bytes(4, "big") + v


def _fixed(data: bytes, width: int, n: int) -> pa.Array:
    """``n`` values of ``width`` bytes each, packed in ``data``, as a variable-width binary array."""
    return pc.cast(pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), n, [None, pa.py_buffer(data)]), pa.binary())


def _prefixed(values: pa.Array) -> pa.Array:
    """Binary cells ``int32 length + bytes`` (length -1 and no bytes for NULL), computed column-wise."""
    values = pc.cast(values, pa.binary())
    lengths = pc.fill_null(pc.binary_length(values), -1).to_numpy(zero_copy_only=False).astype(">i4")
    return pc.binary_join_element_wise(_fixed(lengths.tobytes(), 4, len(values)), pc.fill_null(values, b""), b"")


_FLOAT_WORDS = {"inf": "Infinity", "-inf": "-Infinity", "nan": "NaN"}


def _text_values(col: pa.Array, t: PgType) -> pa.Array:
    """A column as PostgreSQL's text output (NULLs kept), with pyarrow compute rather than per value."""
    if t is BOOL:
        return pc.if_else(col, "t", "f")
    if t is BYTEA:
        return pa.array([None if v is None else "\\x" + v.hex() for v in col.to_pylist()], pa.string())
    if t is TIMESTAMPTZ:
        plain = pc.cast(pc.cast(col, pa.timestamp(col.type.unit, "UTC")), pa.timestamp(col.type.unit))
        return pc.binary_join_element_wise(pc.cast(plain, pa.string()), "+00", "")
    text = pc.cast(col, pa.string())
    if t in (FLOAT4, FLOAT8):
        for word, pg in _FLOAT_WORDS.items():
            text = pc.if_else(pc.equal(text, word), pg, text)
    return text


def _text_cells(col: pa.Array, t: PgType) -> pa.Array:
    """A column as PostgreSQL text-format cells (with their length prefix)."""
    return _prefixed(_text_values(col, t))


def _strings(col: pa.ChunkedArray | pa.Array) -> list[str | None]:
    return pc.cast(col, pa.string()).to_pylist()


def numeric_binary(d: Decimal) -> bytes:
    """PostgreSQL's binary numeric: base-10000 digit groups, weight, sign, display scale."""
    if d.is_nan():
        return struct.pack("!hhHh", 0, 0, 0xC000, 0)
    sign, _digits, exponent = d.as_tuple()
    dscale = max(-int(exponent), 0)
    whole, _, frac = format(abs(d), "f").partition(".")
    whole = whole.lstrip("0")
    whole = whole.rjust((len(whole) + 3) // 4 * 4, "0") if whole else ""
    frac = frac.ljust((len(frac) + 3) // 4 * 4, "0")
    groups = [int(whole[i:i + 4]) for i in range(0, len(whole), 4)] + [int(frac[i:i + 4]) for i in range(0, len(frac), 4)]
    weight = len(whole) // 4 - 1
    while groups and groups[0] == 0:
        groups.pop(0)
        weight -= 1
    while groups and groups[-1] == 0:
        groups.pop()
    if not groups:
        weight = 0
    return struct.pack(f"!hhHh{len(groups)}H", len(groups), weight, 0x4000 if sign else 0, dscale, *groups)


def _packed(values: list, fmt: str) -> list[bytes]:
    s = struct.Struct("!" + fmt)
    prefix = s.size.to_bytes(4, "big")
    return [NULL_CELL if v is None else prefix + s.pack(v) for v in values]


def _binary_cells(col: pa.Array, t: PgType) -> pa.Array:
    return _text_cells(col, t) if t in (TEXT, JSON) else pa.array(_binary_list(col, t), pa.binary())


def _binary_list(col: pa.Array, t: PgType) -> list[bytes]:
    """A column as PostgreSQL binary-format cells (clients such as pgjdbc ask for it per column)."""
    ints = {INT2: "h", INT4: "i", INT8: "q"}
    if t in ints:
        return _packed(col.to_pylist(), ints[t])
    if t in (FLOAT4, FLOAT8):
        return _packed(col.to_pylist(), "f" if t is FLOAT4 else "d")
    if t is BOOL:
        return _packed(col.to_pylist(), "?")
    if t is DATE:
        days = pc.cast(pc.cast(col, pa.date32()), pa.int32()).to_pylist()
        return _packed([None if v is None else v - PG_EPOCH_DAYS for v in days], "i")
    if t in (TIMESTAMP, TIMESTAMPTZ):
        plain = pa.timestamp("us") if t is TIMESTAMP else pa.timestamp("us", "UTC")
        us = pc.cast(pc.cast(col, plain), pa.int64()).to_pylist()
        return _packed([None if v is None else v - PG_EPOCH_US for v in us], "q")
    if t is TIME:
        return _packed(pc.cast(pc.cast(col, pa.time64("us")), pa.int64()).to_pylist(), "q")
    if t is NUMERIC:
        return [NULL_CELL if v is None else _cell(numeric_binary(Decimal(v))) for v in _strings(col)]
    if t is BYTEA:
        return [NULL_CELL if v is None else _cell(v) for v in col.to_pylist()]
    raise PgError("0A000", f"{t.name} 类型的列不支持二进制传输", hint="在查询中将该列转换为文本：列名::VARCHAR")


@dataclass
class ResultSet:
    """A statement's result on its way to the client: the Arrow table, its PG types, and how far it was sent."""

    table: pa.Table
    tag: str                          # the CommandComplete tag for non-row results
    types: list[PgType] = field(default_factory=list)
    offset: int = 0

    @classmethod
    def of(cls, table: pa.Table, tag: str) -> "ResultSet":
        from govlake.access.sql import text_safe_table

        types = [pg_type(f.type) for f in table.schema]
        if any(t in (JSON, INTERVAL) for t in types):
            table = text_safe_table(table)  # nested values as JSON text, intervals as DuckDB's text ('1 day')
            types = [TEXT if t is INTERVAL else t for t in types]  # text is what every client can parse
        return cls(table, tag, types)

    @property
    def has_rows(self) -> bool:
        return self.table.num_columns > 0

    def row_description(self, formats: list[int]) -> bytes:
        buf = BVBuffer()
        for i, (name, t) in enumerate(zip(self.table.column_names, self.types)):
            buf.write_string(name)
            buf.write_bytes(struct.pack("!ihihih", 0, 0, t.oid, t.size, -1, _format(formats, i)))
        out = buf.get_value()
        return struct.pack("!cih", ServerResponse.ROW_DESCRIPTION, len(out) + 6, len(self.types)) + out

    def data_rows(self, formats: list[int], limit: int = 0) -> Iterator[bytes]:
        """DataRow messages from ``offset`` on, at most ``limit`` rows (0: all), in bounded batches.

        Each message is ``'D' int32 length int16 columns`` and the cells; all of it is built column-wise
        (pyarrow's element-wise binary join), so a batch is one contiguous buffer and Python never loops
        over rows."""
        import numpy as np

        end = self.table.num_rows if limit <= 0 else min(self.table.num_rows, self.offset + limit)
        ncols = self.table.num_columns
        while self.offset < end:
            part = self.table.slice(self.offset, min(ROW_BATCH, end - self.offset)).combine_chunks()
            n = part.num_rows
            cells = [(_binary_cells if _format(formats, i) else _text_cells)(part.column(i).combine_chunks(), t)
                     for i, t in enumerate(self.types)]
            size = sum(pc.binary_length(c).to_numpy(zero_copy_only=False).astype(np.int64) for c in cells) + 6
            head = np.empty(n, dtype=[("tag", "S1"), ("len", ">i4"), ("cols", ">i2")])
            head["tag"], head["len"], head["cols"] = b"D", size, ncols
            rows = pc.binary_join_element_wise(_fixed(head.tobytes(), 7, n), *cells, b"")
            self.offset += n
            yield _concatenated(rows)

    @property
    def done(self) -> bool:
        return self.offset >= self.table.num_rows

    def complete_tag(self) -> str:
        return f"SELECT {self.table.num_rows}" if self.tag == "SELECT" else self.tag


def _concatenated(rows: pa.Array) -> bytes:
    """The bytes of a binary array's values, end to end (its data buffer between the first and last offset)."""
    import numpy as np

    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int32)[rows.offset:rows.offset + len(rows) + 1]
    return rows.buffers()[2].to_pybytes()[offsets[0]:offsets[-1]] if len(rows) else b""


def _format(formats: list[int], i: int) -> int:
    if not formats:
        return 0
    return formats[0] if len(formats) == 1 else formats[i]


# -- statements: splitting, session commands, parameters, dialect --------------------------------------------
def split_statements(sql: str) -> list[str]:
    """The statements of a simple-protocol query string (psql sends ``BEGIN; SELECT ...`` as one string)."""
    try:
        tokens = Postgres().tokenizer().tokenize(sql)
    except Exception:  # sqlglot's TokenError or anything a hostile string provokes: DuckDB will say why
        return [sql] if sql.strip() else []
    pieces, start = [], 0
    for tok in tokens:
        if tok.token_type == TokenType.SEMICOLON:
            pieces.append(sql[start:tok.start])
            start = tok.end + 1
    pieces.append(sql[start:])
    return [p for p in pieces if p.strip() and _strip_comments(p)]


_LEADING_COMMENTS = re.compile(r"\A(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?\*/)*", re.S)


def _strip_comments(sql: str) -> str:
    return sql[_LEADING_COMMENTS.match(sql).end():].strip().rstrip(";").strip()


def inline_parameters(sql: str, values: list[str | None]) -> str:
    """``$1``.. replaced by the SQL literals in ``values`` (already rendered by ``literal``), outside strings,
    identifiers and comments (sqlglot's PostgreSQL tokenizer finds them)."""
    if not values:
        return sql
    try:
        tokens = Postgres().tokenizer().tokenize(sql)
    except Exception:
        raise PgError("42601", "SQL 语法错误：无法识别语句中的参数占位符", hint="检查引号与 $$ 字符串是否成对") from None
    out, last = [], 0
    for tok, nxt in zip(tokens, tokens[1:]):
        if tok.token_type == TokenType.PARAMETER and nxt.token_type == TokenType.NUMBER and nxt.start == tok.end + 1:
            n = int(nxt.text)
            if not 1 <= n <= len(values):
                raise PgError("08P01", f"参数 ${n} 没有绑定值（共绑定 {len(values)} 个）")
            out.append(sql[last:tok.start])
            out.append(values[n - 1] if values[n - 1] is not None else "NULL")
            last = nxt.end + 1
    out.append(sql[last:])
    return "".join(out)


_INT_OIDS, _FLOAT_OIDS = {20: "q", 21: "h", 23: "i", 26: "I"}, {700: "f", 701: "d"}


def literal(raw: bytes | None, oid: int, fmt: int) -> str | None:
    """A bound parameter as a SQL literal of its declared type (None for NULL)."""
    if raw is None:
        return None
    try:
        if fmt == 1:
            return _binary_literal(raw, oid)
        text = raw.decode("utf-8")
        if oid in _INT_OIDS:
            return str(int(text))
        if oid in _FLOAT_OIDS:
            return repr(float(text))
        if oid == 1700:
            return str(Decimal(text))
        if oid == 16:
            return "TRUE" if text.strip().lower() in ("t", "true", "1", "on", "yes", "y") else "FALSE"
        typed = {1082: "DATE", 1083: "TIME", 1114: "TIMESTAMP", 1184: "TIMESTAMPTZ"}.get(oid)
        return f"{typed} {_quote(text)}" if typed else _quote(text)
    except (ValueError, UnicodeDecodeError, InvalidOperation, struct.error):
        raise PgError("22P02", f"绑定参数的取值与其声明类型（OID {oid}）不符") from None


def _binary_literal(raw: bytes, oid: int) -> str:
    if oid in _INT_OIDS:
        return str(struct.unpack("!" + _INT_OIDS[oid], raw)[0])
    if oid in _FLOAT_OIDS:
        return repr(struct.unpack("!" + _FLOAT_OIDS[oid], raw)[0])
    if oid == 16:
        return "TRUE" if raw != b"\x00" else "FALSE"
    if oid in (25, 1043, 19, 0, 114):
        return _quote(raw.decode("utf-8"))
    if oid == 1082:
        import datetime as _dt

        day = _dt.date(2000, 1, 1) + _dt.timedelta(days=struct.unpack("!i", raw)[0])
        return f"DATE '{day.isoformat()}'"
    raise PgError("0A000", f"不支持该类型（OID {oid}）的二进制参数", hint="请以文本格式发送参数")


def _quote(text: str) -> str:
    if "\x00" in text:
        raise ValueError("NUL in a parameter")
    return "'" + text.replace("'", "''") + "'"


# psql's catalog idioms DuckDB's pg_catalog lacks; rewritten only in statements that name pg_catalog.
_PG_IDIOMS = (
    (re.compile(r"OPERATOR\s*\(\s*pg_catalog\s*\.\s*([~!=<>*+\-/%^|&#@]+)\s*\)", re.I), r"\1"),
    (re.compile(r"\s+COLLATE\s+pg_catalog\s*\.\s*\"?default\"?", re.I), ""),
    (re.compile(r"::\s*pg_catalog\s*\.\s*", re.I), "::"),
    (re.compile(r"(?:pg_catalog\s*\.\s*)?pg_get_userbyid\s*\(\s*[\w.]+\s*\)", re.I), "'govlake'"),  # one owner
    (re.compile(r"(?:pg_catalog\s*\.\s*)?(?:pg_get_statisticsobjdef_columns|pg_get_partkeydef|pg_get_triggerdef"
                r"|pg_get_ruledef|pg_get_indexdef|pg_relation_is_publishable)\s*\(\s*[\w.']+\s*\)", re.I),
     "NULL::VARCHAR"),  # definitions of objects the lake does not have
    (re.compile(r"(?:pg_catalog\s*\.\s*)?array_upper\s*\(([^(),]+),\s*1\s*\)", re.I), r"len(\1)"),
    (re.compile(r"(generate_series\s*\((?:[^()]|\([^()]*\))*\))\s+s\s*,", re.I), r"\1 AS s(s),"),  # s: a value
    # the session's tables are views over Arrow datasets; clients list tables with relkind 'r' (psql \dt)
    (re.compile(r"\bpg_catalog\s*\.\s*pg_class\b(?!\s*\.)", re.I),
     "(SELECT * REPLACE (CASE WHEN relkind = 'v' THEN 'r' ELSE relkind END AS relkind), "
     "false AS relforcerowsecurity FROM pg_catalog.pg_class)"),
    (re.compile(r"::\s*reg(?:type|class|proc|namespace|role)\b", re.I), "::VARCHAR"),
    (re.compile(r"\bpg_catalog\s*\.\s*(\w+)\s*\(", re.I), r"\1("),  # DuckDB's search path has pg_catalog
    (re.compile(r"pg_get_expr\s*\(([^(),]+),([^(),]+),\s*(?:true|false)\s*\)", re.I), r"pg_get_expr(\1,\2)"),
)


# PostgreSQL catalog tables DuckDB's pg_catalog lacks that psql's \d reads: empty, with the columns it uses.
_EMPTY_CATALOGS = {
    "pg_policy": "polname VARCHAR, polpermissive BOOLEAN, polroles BIGINT[], polqual VARCHAR, "
                 "polwithcheck VARCHAR, polcmd VARCHAR, polrelid BIGINT",
    "pg_statistic_ext": "oid BIGINT, stxrelid BIGINT, stxname VARCHAR, stxnamespace BIGINT, stxkind VARCHAR[], "
                        "stxkeys INTEGER[], stxstattarget INTEGER, stxexprs VARCHAR",
    "pg_publication": "oid BIGINT, pubname VARCHAR, puballtables BOOLEAN, pubinsert BOOLEAN, pubupdate BOOLEAN, "
                      "pubdelete BOOLEAN, pubtruncate BOOLEAN, pubviaroot BOOLEAN, pubowner BIGINT",
    "pg_publication_rel": "oid BIGINT, prpubid BIGINT, prrelid BIGINT, prqual VARCHAR, prattrs INTEGER[]",
    "pg_publication_namespace": "oid BIGINT, pnpubid BIGINT, pnnspid BIGINT",
    "pg_inherits": "inhrelid BIGINT, inhparent BIGINT, inhseqno INTEGER, inhdetachpending BOOLEAN",
    "pg_roles": "oid BIGINT, rolname VARCHAR",
}


def _empty_relation(columns: str) -> str:
    cols = ", ".join(f"NULL::{typ} AS {name}" for name, typ in (c.strip().split(" ", 1) for c in columns.split(",")))
    return f"(SELECT {cols} WHERE false)"


_PG_IDIOMS += tuple(
    (re.compile(rf"\bpg_catalog\s*\.\s*{name}\b(?!\s*\.)", re.I), _empty_relation(columns))
    for name, columns in _EMPTY_CATALOGS.items())


def to_duckdb(sql: str, parser: duckdb.DuckDBPyConnection) -> str:
    """The statement DuckDB is given: psql's catalog idioms rewritten; sqlglot's postgres->duckdb transpile
    only when DuckDB's own parser refuses the text (and the transpiled text parses)."""
    if "pg_catalog" in sql.lower():
        for pattern, repl in _PG_IDIOMS:
            sql = pattern.sub(repl, sql)
    try:
        parser.extract_statements(sql)
        return sql
    except duckdb.Error:
        pass
    try:
        candidate = ";\n".join(sqlglot.transpile(sql, read="postgres", write="duckdb"))
        parser.extract_statements(candidate)
        return candidate
    except Exception:  # neither parses: DuckDB's own message (scrubbed by the session) tells the user why
        return sql


# -- session commands answered by the endpoint ---------------------------------------------------------------
SERVER_PARAMETERS = {  # ParameterStatus sent after authentication (what libpq, psycopg and pgjdbc expect)
    "server_version": "15.0", "server_encoding": "UTF8", "client_encoding": "UTF8", "DateStyle": "ISO, MDY",
    "TimeZone": "UTC", "IntervalStyle": "postgres", "integer_datetimes": "on",
    "standard_conforming_strings": "on", "is_superuser": "off",
}
SHOW_ONLY = {  # further parameters clients SHOW (DBeaver, Superset, pgjdbc)
    "transaction_isolation": "read committed", "default_transaction_isolation": "read committed",
    "transaction_read_only": "on", "default_transaction_read_only": "on", "search_path": '"$user", public',
    "max_identifier_length": "63", "statement_timeout": "0", "lc_collate": "C", "lc_ctype": "C",
    "lc_messages": "C", "extra_float_digits": "1", "bytea_output": "hex", "server_version_num": "150000",
}
_TX_TAGS = {"BEGIN": "BEGIN", "START": "BEGIN", "COMMIT": "COMMIT", "END": "COMMIT", "ROLLBACK": "ROLLBACK",
            "ABORT": "ROLLBACK", "SAVEPOINT": "SAVEPOINT", "RELEASE": "RELEASE"}
_OTHER_TAGS = {"SET": "SET", "RESET": "RESET", "DISCARD": "DISCARD ALL", "DEALLOCATE": "DEALLOCATE",
               "UNLISTEN": "UNLISTEN"}


@dataclass
class SessionCommand:
    keyword: str  # BEGIN / COMMIT / ROLLBACK / SET / SHOW / ...
    rest: str


def session_command(sql: str) -> SessionCommand | None:
    """A statement the endpoint answers itself, or None (it goes to DuckDB through the session)."""
    body = _strip_comments(sql)
    m = re.match(r"([A-Za-z]+)\b\s*(.*)\Z", body, re.S)
    if not m:
        return None
    kw, rest = m.group(1).upper(), m.group(2).strip()
    if kw in _TX_TAGS or kw in _OTHER_TAGS:
        if kw == "START" and not rest.upper().startswith("TRANSACTION"):
            return None
        return SessionCommand(kw, rest)
    if kw == "SHOW" and _show_name(rest) is not None:
        return SessionCommand(kw, rest)
    return None


def _show_name(rest: str) -> str | None:
    name = re.sub(r"\s+", "_", rest.strip().strip('"').lower())
    name = {"transaction_isolation_level": "transaction_isolation", "time_zone": "timezone"}.get(name, name)
    known = {k.lower() for k in SERVER_PARAMETERS} | set(SHOW_ONLY) | {"all", "application_name",
                                                                     "session_authorization"}
    return name if name in known else None


_SET = re.compile(r"(?:SESSION\s+|LOCAL\s+)?(?:(TIME\s+ZONE)\s+|([A-Za-z_][\w.]*)\s*(?:=|\bTO\b)\s*)(.*)\Z", re.I | re.S)


# -- the connection --------------------------------------------------------------------------------------------
@dataclass
class Prepared:
    sql: str
    param_oids: list[int]


@dataclass
class Portal:
    prepared: Prepared
    sql: str                       # parameters inlined
    result_formats: list[int]
    result: ResultSet | None = None


class Connection:
    """One client connection after authentication: its principal, SQL session and protocol state."""

    def __init__(self, server: "PgWireServer", principal, params: dict[str, str]) -> None:
        self.server = server
        self.principal = principal
        self.params = {k.lower(): v for k, v in params.items()}
        self.process_id = secrets.randbelow(2**31 - 1) + 1
        self.secret_key = secrets.randbelow(2**31 - 1) + 1  # the cancel key must not be guessable
        self.session = server.open_session(principal)
        self.checked_at = time.monotonic()
        self.parser = duckdb.connect()  # an empty in-memory database used only to ask DuckDB's parser
        self.statements: dict[str, Prepared] = {}
        self.portals: dict[str, Portal] = {}
        self.in_transaction = False
        self.failed = False
        self.running = threading.Lock()

    def transaction_status(self) -> bytes:
        if not self.in_transaction:
            return b"I"
        return b"E" if self.failed else b"T"

    def cancel(self) -> None:
        """A CancelRequest from another socket: interrupt the running statement (audited as interrupted)."""
        if self.running.locked():
            self.session.interrupt("sigint")

    def close(self) -> None:
        for closer in (self.session.close, self.parser.close):
            try:
                closer()
            except Exception:  # closing is best effort; the socket is gone anyway
                pass

    # -- running statements ----------------------------------------------------------------------------
    def run(self, sql: str) -> ResultSet:
        """One statement: a session command answered here, or the session's query (grants, audit)."""
        command = session_command(sql)
        if self.failed and not (command and command.keyword in ("COMMIT", "END", "ROLLBACK", "ABORT")):
            raise PgError("25P02", "当前事务已出错中止，在事务结束前忽略后续语句", hint="先执行 ROLLBACK")
        if command is not None:
            return self._session_command(command)
        return self._query(sql)

    def _revalidate(self) -> None:
        """Re-read the account and its grants at most every REVALIDATE_S seconds, and at once when a grant
        the session holds has expired: a revoked or expired grant, a changed role or a disabled account takes
        effect on a long-lived connection within that time, not at the next login. The session is rebuilt
        when what it may see changed (its TEMP objects go with it)."""
        held = self.principal.grants
        if time.monotonic() - self.checked_at < REVALIDATE_S and all(g.live() for g in held):
            return
        if self.principal.user_id is None:  # the lake owner's own identity has no grants to re-read
            return
        from govlake.control.identities import AuthenticationFailed, principal_for

        ctx = self.server.ctx
        try:
            fresh = principal_for(ctx.settings, ctx.registry, self.principal.user_id, self.principal.auth)
        except AuthenticationFailed:
            raise PgError("28000", "账号已停用或不存在，连接不再可用", hint="请联系系统管理员", severity="FATAL") from None
        self.checked_at = time.monotonic()
        if (fresh.role, fresh.node, fresh.grants) != (self.principal.role, self.principal.node, held):
            old, self.session, self.principal = self.session, self.server.open_session(fresh), fresh
            old.close()

    def _query(self, sql: str) -> ResultSet:
        from govlake.access.sql import statement_timeout

        self._revalidate()
        text = to_duckdb(sql, self.parser)
        timeout = statement_timeout()
        timer = threading.Timer(timeout, self.session.interrupt, args=("timeout",)) if timeout > 0 else None
        with self.running:
            self.session.interrupted = None  # a cancelled earlier statement must not stop this one
            if timer:
                timer.daemon = True
                timer.start()
            try:
                table = self.session.query(text).table
            finally:
                if timer:
                    timer.cancel()
        word = _strip_comments(text).split(None, 1)[0].upper() if _strip_comments(text) else "SELECT"
        tag = "SELECT" if table.num_columns and word not in ("INSERT", "UPDATE", "DELETE", "CREATE", "DROP") else word
        if tag != "SELECT":
            table = pa.table({})
            tag = {"CREATE": "CREATE TABLE", "DROP": "DROP TABLE", "INSERT": "INSERT 0 0"}.get(word, word)
        return ResultSet.of(table, tag)

    def _session_command(self, command: SessionCommand) -> ResultSet:
        kw = command.keyword
        if kw in _TX_TAGS:
            return ResultSet.of(pa.table({}), self._transaction(kw, command.rest))
        if kw == "SET":
            self._set(command.rest)
        elif kw == "SHOW":
            return self._show(_show_name(command.rest) or "")
        elif kw in ("RESET", "DISCARD"):
            self.params = {k: v for k, v in self.params.items() if k in ("user", "database", "application_name")}
        return ResultSet.of(pa.table({}), _OTHER_TAGS[kw])

    def _transaction(self, kw: str, rest: str) -> str:
        """Transaction statements only track the state clients see in ReadyForQuery: the session is read-only."""
        tag = _TX_TAGS[kw]
        if tag == "BEGIN":
            self.in_transaction = True
        elif tag == "ROLLBACK" and rest.upper().startswith("TO"):
            self.failed = False  # ROLLBACK TO SAVEPOINT: still inside the transaction
        elif tag in ("COMMIT", "ROLLBACK"):
            tag = "ROLLBACK" if self.failed else tag
            self.in_transaction = self.failed = False
        return tag

    def _set(self, rest: str) -> None:
        m = _SET.match(rest)
        if m:
            name = "timezone" if m.group(1) else m.group(2).lower()
            self.params[name] = m.group(3).strip().strip("'\"")

    def _show(self, name: str) -> ResultSet:
        values = {k.lower(): v for k, v in SERVER_PARAMETERS.items()} | SHOW_ONLY | {
            "application_name": self.params.get("application_name", ""), "session_authorization": self.principal.name}
        values |= {k: v for k, v in self.params.items() if k in values and k not in ("client_encoding", "server_encoding")}
        if name == "all":
            table = pa.table({"name": list(values), "setting": list(values.values()), "description": [""] * len(values)})
        else:
            table = pa.table({name: [values[name]]})
        return ResultSet.of(table, "SHOW")


# -- the handler -------------------------------------------------------------------------------------------------
class _Closed(Exception):
    """The client went away (EOF or reset): stop serving the connection quietly."""


class GovlakeHandler(BuenaVistaHandler):
    """buenavista's handler with our authentication, statement routing, errors and result encoding."""

    server: "PgWireServer"
    wbufsize = 1 << 16  # buffered writes, flushed at ReadyForQuery / Flush (rows are many small messages)

    def handle(self) -> None:
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        self.r = BVBuffer(self.rfile)
        conn: Connection | None = None
        if not self.server.slots.acquire(blocking=False):  # bounded threads and memory per server
            self._send_error(PgError("53300", "连接数已达上限，请稍后再试", severity="FATAL"))
            return
        try:
            self.request.settimeout(STARTUP_TIMEOUT_S)  # a client that never finishes logging in is dropped
            conn = self._startup()
            self.request.settimeout(None)
            if conn is not None:
                self._serve(conn)
        except (_Closed, ConnectionError, OSError):
            pass
        except PgError as exc:
            self._send_error(exc)
        except Exception as exc:  # a bug of ours: the client gets a generic FATAL, the log the frames
            log_internal(exc)
            self._send_error(PgError("XX000", "服务器内部错误，连接已关闭", severity="FATAL"))
        finally:
            self.server.slots.release()
            if conn is not None:
                self.server.ctxts.pop(conn.process_id, None)
                conn.close()
            try:
                self.wfile.flush()
            except OSError:
                pass

    # -- startup and authentication ------------------------------------------------------------------------
    def _startup(self) -> Connection | None:
        while True:
            length = self._read_uint32()
            if not 8 <= length <= 10_000:
                raise PgError("08P01", "无效的启动消息", severity="FATAL")
            code = self._read_uint32()
            body = self._read_exact(length - 8)
            if code in (SSL_REQUEST, GSS_REQUEST):  # no TLS here: TLS is terminated in front (docs/security.md)
                self.wfile.write(b"N")
                self.wfile.flush()
                continue
            if code == CANCEL_REQUEST:
                pid, secret = struct.unpack("!II", body[:8])
                target = self.server.ctxts.get(pid)
                if target is not None and target.secret_key == secret:
                    target.cancel()
                return None
            if code != PROTOCOL_3:
                raise PgError("0A000", "不支持的协议版本（仅支持 PostgreSQL 协议 3.0）", severity="FATAL")
            parts = body.split(b"\x00")
            params = {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in zip(parts[::2], parts[1::2]) if k}
            return self._authenticate(params)

    def _authenticate(self, params: dict[str, str]) -> Connection | None:
        from govlake.control import identities

        self.wfile.write(struct.pack("!cii", ServerResponse.AUTHENTICATION_REQUEST, 8, AUTH_CLEARTEXT))
        self.wfile.flush()
        kind, payload = self._read_message(limit=MAX_PASSWORD_MESSAGE)  # nobody unauthenticated buffers 256 MiB
        if kind != ClientCommand.PASSWORD_MESSAGE:
            raise PgError("08P01", "应先发送密码", severity="FATAL")
        secret = payload.rstrip(b"\x00").decode("utf-8", "replace")
        user = params.get("user", "")
        ctx = self.server.ctx
        try:
            principal = identities.authenticate(ctx.settings, ctx.registry, user, secret, channel="pgwire")
        except GovlakeError as exc:  # AuthenticationFailed: one generic message; AuditError: fail closed
            sqlstate = "28P01" if type(exc).__name__ == "AuthenticationFailed" else "XX000"
            raise PgError(sqlstate, exc.message, hint=exc.hint, severity="FATAL") from None
        try:
            conn = Connection(self.server, principal, params)
        except GovlakeError as exc:
            raise PgError(sqlstate_of(exc), exc.message, hint=exc.hint, severity="FATAL") from None
        self.server.ctxts[conn.process_id] = conn
        self.wfile.write(struct.pack("!cii", ServerResponse.AUTHENTICATION_REQUEST, 8, AUTH_OK))
        self.send_parameter_status(SERVER_PARAMETERS | {
            "application_name": params.get("application_name", ""), "session_authorization": principal.name})
        self.send_backend_key_data(conn)
        self.send_ready_for_query(conn)
        return conn

    # -- the message loop ------------------------------------------------------------------------------------
    def _serve(self, conn: Connection) -> None:
        skip_until_sync = False  # after an error in the extended protocol, until the client's Sync
        while True:
            kind, payload = self._read_message()
            if kind == ClientCommand.TERMINATE:
                return
            if kind == ClientCommand.QUERY:
                self._simple_query(conn, payload.rstrip(b"\x00").decode("utf-8", "replace"))
            elif kind == ClientCommand.SYNC:
                skip_until_sync = False
                self.send_ready_for_query(conn)
            elif kind == ClientCommand.FLUSH:
                self.wfile.flush()
            elif skip_until_sync:
                continue
            else:
                try:
                    self._extended(conn, kind, payload)
                except Exception as exc:
                    self._report(conn, exc)
                    skip_until_sync = True

    def _extended(self, conn: Connection, kind: bytes, payload: bytes) -> None:
        handlers = {ClientCommand.PARSE: self._parse, ClientCommand.BIND: self._bind,
                    ClientCommand.DESCRIBE: self._describe, ClientCommand.EXECUTE: self._execute,
                    ClientCommand.CLOSE: self._close}
        handler = handlers.get(kind)
        if handler is None:
            raise PgError("08P01", f"不支持的协议消息类型：{kind!r}")
        handler(conn, payload)

    def _simple_query(self, conn: Connection, sql: str) -> None:
        statements = split_statements(sql)
        if not statements:
            self.wfile.write(struct.pack("!ci", ServerResponse.EMPTY_QUERY_RESPONSE, 4))
        for statement in statements:
            try:
                result = conn.run(statement)
            except Exception as exc:
                self._report(conn, exc)
                break
            if result.has_rows:
                self.wfile.write(result.row_description([]))
                for chunk in result.data_rows([]):
                    self.wfile.write(chunk)
            self.send_command_complete(result.complete_tag())
        self.send_ready_for_query(conn)

    def _report(self, conn: Connection, exc: BaseException) -> None:
        if not isinstance(exc, (GovlakeError, PgError)):
            log_internal(exc)
        if conn.in_transaction:
            conn.failed = True
        self._send_error(pg_error(exc))

    # -- extended protocol -----------------------------------------------------------------------------------
    def _parse(self, conn: Connection, payload: bytes) -> None:
        name, rest = _cstring(payload)
        sql, rest = _cstring(rest)
        (count,) = struct.unpack("!h", rest[:2])
        oids = list(struct.unpack(f"!{count}i", rest[2:2 + 4 * count]))
        conn.statements[name] = Prepared(sql, oids)
        self.send_parse_complete()

    def _bind(self, conn: Connection, payload: bytes) -> None:
        portal, rest = _cstring(payload)
        stmt, rest = _cstring(rest)
        prepared = conn.statements.get(stmt)
        if prepared is None:
            raise PgError("26000", f"预备语句 “{stmt}” 不存在")
        buf = BVBuffer(_Reader(rest))
        formats = [buf.read_int16() for _ in range(buf.read_int16())]
        count = buf.read_int16()
        values = []
        for i in range(count):
            n = buf.read_int32()
            raw = None if n < 0 else buf.read_bytes(n)
            oid = prepared.param_oids[i] if i < len(prepared.param_oids) else 0
            values.append(literal(raw, oid, _format(formats, i)))
        result_formats = [buf.read_int16() for _ in range(buf.read_int16())]
        conn.portals[portal] = Portal(prepared, inline_parameters(prepared.sql, values), result_formats)
        self.send_bind_complete()

    def _describe(self, conn: Connection, payload: bytes) -> None:
        kind, name = payload[:1], payload[1:].rstrip(b"\x00").decode("utf-8", "replace")
        if kind == b"S":
            prepared = conn.statements.get(name)
            if prepared is None:
                raise PgError("26000", f"预备语句 “{name}” 不存在")
            self.send_paramter_description([oid or TEXT.oid for oid in prepared.param_oids])
            self._send_description(self._shape(conn, prepared), [])
            return
        portal = conn.portals.get(name)
        if portal is None:
            raise PgError("34000", f"门户 “{name}” 不存在")
        if portal.result is None:  # run now; Execute then sends the rows (as PostgreSQL's portals do)
            portal.result = conn.run(portal.sql)
        self._send_description(portal.result, portal.result_formats)

    def _shape(self, conn: Connection, prepared: Prepared) -> ResultSet | None:
        """A prepared statement's columns, before any parameter is known: a read runs with NULL parameters
        and LIMIT 0 (it is audited like any statement); anything else describes no rows."""
        body = _strip_comments(prepared.sql)
        if session_command(body) is not None or not re.match(r"(SELECT|WITH|VALUES|FROM|TABLE)\b", body, re.I):
            return None
        nulls = [f"CAST(NULL AS {_cast_name(oid)})" for oid in prepared.param_oids]
        return conn.run(f"SELECT * FROM ({inline_parameters(body, nulls)}) AS q LIMIT 0")

    def _send_description(self, result: ResultSet | None, formats: list[int]) -> None:
        if result is not None and result.has_rows:
            self.wfile.write(result.row_description(formats))
        else:
            self.wfile.write(struct.pack("!ci", ServerResponse.NO_DATA, 4))

    def _execute(self, conn: Connection, payload: bytes) -> None:
        name, rest = _cstring(payload)
        (limit,) = struct.unpack("!i", rest[:4])
        portal = conn.portals.get(name)
        if portal is None:
            raise PgError("34000", f"门户 “{name}” 不存在")
        if portal.result is None:
            portal.result = conn.run(portal.sql)
        result = portal.result
        if result.has_rows:
            for chunk in result.data_rows(portal.result_formats, limit):
                self.wfile.write(chunk)
            if not result.done:
                self.send_portal_suspend()
                return
        self.send_command_complete(result.complete_tag())

    def _close(self, conn: Connection, payload: bytes) -> None:
        kind, name = payload[:1], payload[1:].rstrip(b"\x00").decode("utf-8", "replace")
        (conn.statements if kind == b"S" else conn.portals).pop(name, None)
        self.send_close_complete()

    # -- framing -------------------------------------------------------------------------------------------
    def _read_exact(self, n: int) -> bytes:
        data = self.rfile.read(n) if n else b""
        if len(data) != n:
            raise _Closed()
        return data

    def _read_uint32(self) -> int:
        return struct.unpack("!I", self._read_exact(4))[0]

    def _read_message(self, limit: int = MAX_MESSAGE) -> tuple[bytes, bytes]:
        kind = self.rfile.read(1)
        if not kind:
            raise _Closed()
        length = self._read_uint32()
        if not 4 <= length <= limit:
            raise PgError("08P01", "协议消息长度无效", severity="FATAL")
        return kind, self._read_exact(length - 4)

    def send_command_complete(self, tag: str) -> None:
        data = tag.encode() + b"\x00"
        self.wfile.write(struct.pack("!ci", ServerResponse.COMMAND_COMPLETE, len(data) + 4) + data)

    def send_ready_for_query(self, ctx) -> None:
        super().send_ready_for_query(ctx)
        self.wfile.flush()

    def send_error(self, exception, ctx=None) -> None:  # buenavista's entry point: never its str(exception)
        self._send_error(pg_error(exception))

    def _send_error(self, error: PgError) -> None:
        buf = BVBuffer()
        for code, text in error.fields():
            buf.write_byte(code)
            buf.write_string(text)
        buf.write_bytes(b"\x00")
        out = buf.get_value()
        try:
            self.wfile.write(struct.pack("!ci", ServerResponse.ERROR_RESPONSE, len(out) + 4) + out)
            if error.severity == "FATAL":
                self.wfile.flush()
        except OSError:
            pass


class _Reader:
    """A byte string read like a stream by BVBuffer (short reads are a protocol violation)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def read(self, n: int) -> bytes:
        chunk = self.data[self.pos:self.pos + n]
        if len(chunk) != n:
            raise PgError("08P01", "协议消息被截断")
        self.pos += n
        return chunk


def _cstring(data: bytes) -> tuple[str, bytes]:
    end = data.find(b"\x00")
    if end < 0:
        raise PgError("08P01", "协议消息格式错误（字符串未以 NUL 结尾）")
    return data[:end].decode("utf-8", "replace"), data[end + 1:]


def _cast_name(oid: int) -> str:
    return {20: "BIGINT", 21: "SMALLINT", 23: "INTEGER", 700: "REAL", 701: "DOUBLE", 1700: "DECIMAL",
            16: "BOOLEAN", 1082: "DATE", 1114: "TIMESTAMP", 1184: "TIMESTAMPTZ"}.get(oid, "VARCHAR")


# -- the server --------------------------------------------------------------------------------------------------
def is_loopback(host: str) -> bool:
    from govlake.access.dashboard import is_loopback as loopback

    return loopback(host)


class PgWireServer(BuenaVistaServer):
    """The endpoint: a thread per connection, each with its own principal and SqlSession.

    It listens on loopback unless a non-loopback ``host`` is given with ``explicit=True`` (``--sql-host``);
    on loopback it also refuses any client that is not local (``verify_request``)."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, ctx: Context, host: str = "127.0.0.1", port: int = DEFAULT_SQL_PORT, *,
                 explicit: bool = False) -> None:
        if not is_loopback(host) and not explicit:
            raise ConfigError(f"SQL 端点默认只在本机回环地址上提供服务，拒绝在 {host} 上启动",
                              where="govlake serve --sql-host",
                              hint="需要对外提供时显式给出 --sql-host，并在其前面部署 TLS（见 docs/security.md）")
        self.ctx = ctx
        self.host = host
        self.loopback_only = is_loopback(host)
        if ":" in host.strip("[]"):
            self.address_family = socket.AF_INET6
        # BuenaVistaServer.__init__ wants a buenavista Connection and its auth dict; we have neither
        socketserver.ThreadingTCPServer.__init__(self, (host.strip("[]"), port), GovlakeHandler)
        self.conn, self.rewriter, self.extensions, self.auth = None, None, {}, "identities"
        self.ctxts: dict[int, Connection] = {}
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._descriptions: dict[tuple[str, str], tuple[str, dict[str, str]]] = {}

    @property
    def port(self) -> int:
        return self.server_address[1]

    def verify_request(self, request, client_address) -> bool:
        """On a loopback bind only local clients (a forwarded port cannot widen it); otherwise anyone who
        reaches the explicitly configured address, still authenticated per connection."""
        return not self.loopback_only or is_loopback(client_address[0])

    def open_session(self, principal):
        """A SqlSession for one connection's principal, with the catalogue's descriptions as comments."""
        from govlake.access.sql import SqlSession
        from govlake.descriptions import column_descriptions, table_description

        ctx, cache = self.ctx, self._descriptions

        def describe(layer: str, name: str) -> tuple[str, dict[str, str]]:
            # catalogue text, the same for every connection: computed once per process
            if (layer, name) not in cache:
                cache[layer, name] = table_description(ctx, layer, name), column_descriptions(ctx, layer, name)
            return cache[layer, name]

        return SqlSession(ctx.lake, principal=principal, describe=describe, registry=ctx.registry)

    def start(self) -> threading.Thread:
        """Serve in a background thread (``govlake serve``, tests); ``stop`` ends it."""
        thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2},
                                  name="govlake-pgwire", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self.shutdown()
        for conn in list(self.ctxts.values()):
            conn.cancel()
        self.server_close()


__all__ = ["DEFAULT_SQL_PORT", "PgError", "PgWireServer", "ResultSet", "inline_parameters", "literal",
           "numeric_binary", "pg_type", "session_command", "split_statements", "to_duckdb"]
