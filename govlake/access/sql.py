"""SQL over the lake's Delta tables for one authenticated principal (``govlake sql``, the pg-wire endpoint).

Each principal gets a DuckDB session in which only the tables ``govlake.control.policy.resolve`` grants it
exist (``gold.population``, ``silver.market_entities`` ...), each registered as a pyarrow dataset already
filtered to the principal's rows and projected to its columns, so refused rows and columns never exist
inside DuckDB; masked columns are constants in the view. Two independent locks keep every session read-only:

* DuckDB never touches the lake's files. Each table is a view over a delta-rs Arrow dataset of its current
  snapshot, so the session needs no file access at all: ``enable_external_access = false`` with no allowed
  directories, no temp directory (DuckDB would otherwise allow ``<cwd>/.tmp/``), no extension installs, no
  persistent secrets, configuration locked. ``COPY ... TO``, ``ATTACH 'x.db'``, ``read_parquet`` of a bronze
  file all fail inside DuckDB even if a statement slipped through.
* Before anything runs, each statement is classified by DuckDB's own parser and only reads are admitted
  (SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW, SUMMARIZE, read pragmas, EXPLAIN of a read); writes are
  admitted only on session-local TEMP tables and views. One refused statement refuses the whole string.
  Every function a statement calls must be known to be free of side effects (``_check_functions``): some,
  like ``enable_logging(storage='file')``, fail inside DuckDB in a way that aborts the whole process.

Ctrl-C, SIGTERM and the time limit ($GOVLAKE_SQL_TIMEOUT) interrupt the running statement
(``run_interruptible``), which is then audited as interrupted / timeout; ``--export-duckdb`` is audited too.

Every statement is audited in the control plane's hash-chained audit log (``govlake.control.audit``, action
``sql``) with the principal, its outcome, the tables and grants it read, every literal masked and a keyed
digest (HMAC under the lake's secret) instead of an unkeyed hash that candidates could be hashed against.
The audit fails closed: if its row cannot be written, the query's result is not returned.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
import sqlglot
from sqlglot import exp
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.tokens import TokenType

from govlake.control.audit import DIGEST_PURPOSE
from govlake.control.policy import LAYER_ORDER, MASK_TEXT, TableAccess, refusal, resolve
from govlake.control.principal import ROLE_NAMES, ROLES, Principal
from govlake.errors import AccessDenied, GovlakeError, QueryError, did_you_mean
from govlake.lake import Lake
from govlake.messages import UNKNOWN_ROLE

if TYPE_CHECKING:
    from govlake.registry import Registry

AUDIT_PURPOSE = DIGEST_PURPOSE  # the keyed digest's purpose (audit.record): audit digests never equal pseudonyms
OBJECTION_COLUMN = "_objection"  # trailing column of silver and gold views: 有异议 while an objection is open
OBJECTION_TEXT = "有异议"
OBJECTION_LAYERS = ("silver", "gold")
OBJECTION_DESCRIPTION = "数据异议：该记录有未办结的异议时为“有异议”（govlake objection），否则为空"

ST = duckdb.StatementType
# Statements that only read. DuckDB parses DESCRIBE, SHOW, SUMMARIZE, FROM-first and VALUES as SELECT.
READ_TYPES = {ST.SELECT}
# Pragmas that only describe the session. DuckDB 1.x's parser rewrote them to SELECTs of their pragma
# functions; DuckDB 2 parses every pragma as PRAGMA (assignments as SET), so they are admitted by name.
READ_PRAGMAS = frozenset({"table_info", "show", "version", "show_tables", "show_tables_expanded", "collations",
                          "functions"})
# Writes admitted only when their target is a session-local TEMP object (checked on the parsed statement).
TEMP_WRITE_TYPES = {ST.CREATE, ST.INSERT, ST.UPDATE, ST.DELETE, ST.DROP}
TEMP_CREATE_KINDS = {"TABLE", "VIEW"}

# Connection settings applied before the configuration is locked (order matters: locking is last).
SANDBOX_SETTINGS = (
    ("temp_directory", "''"),  # no spill files, and DuckDB no longer allows <cwd>/.tmp/
    ("autoinstall_known_extensions", "false"),
    ("autoload_known_extensions", "false"),
    ("allow_community_extensions", "false"),
    ("allow_persistent_secrets", "false"),
    ("enable_external_access", "false"),  # with no allowed directories or paths: no file at all
    ("lock_configuration", "true"),
)

# Functions are admitted by name (see SqlSession._check_functions). Scalar, aggregate and macro functions
# compute values: all admitted except these, which read the process's environment or configuration or write
# DuckDB's log. Table and pragma functions are where side effects live (enable_logging, checkpoint, file
# readers, query('...') running any text, json_execute_serialized_sql): only these are admitted.
DENIED_SCALARS = frozenset({"getenv", "current_setting", "write_log", "json_execute_serialized_sql"})
SAFE_TABLE_FUNCTIONS = frozenset({
    "range", "generate_series", "unnest", "repeat", "repeat_row", "json_each", "json_tree",
    "duckdb_columns", "duckdb_tables", "duckdb_views", "duckdb_schemas", "duckdb_types", "duckdb_functions",
    "duckdb_keywords", "duckdb_constraints", "duckdb_indexes", "duckdb_dependencies", "duckdb_databases",
    "pragma_table_info", "pragma_show", "pragma_version", "pragma_collations", "icu_calendar_names",
    "pg_timezone_names", "test_all_types", "histogram", "histogram_values",
    # pragma functions that only describe the session (PRAGMA table_info('gold.population'))
    *READ_PRAGMAS,
})
UNRESTRICTED_KINDS = ("scalar", "aggregate", "macro")

LITERAL_TOKENS = {
    TokenType.STRING, TokenType.NUMBER, TokenType.HEREDOC_STRING, TokenType.NATIONAL_STRING,
    TokenType.NATIONAL_RAW_STRING, TokenType.BYTE_STRING, TokenType.BIT_STRING, TokenType.HEX_STRING,
    TokenType.RAW_STRING, TokenType.UNICODE_STRING,
}
DIGIT_RUN = re.compile(r"\d{4,}")
QUOTED = re.compile(r'"[^"]*"|\'[^\']*\'')


DEFAULT_TIMEOUT_S = 300.0
TIMEOUT_ENV = "GOVLAKE_SQL_TIMEOUT"
INTERRUPT_EXIT = {"sigint": 130, "sigterm": 143, "timeout": 124}  # shell conventions (128 + signal; timeout(1))


class QueryInterrupted(QueryError):
    """The query was stopped by Ctrl-C, SIGTERM or the time limit; ``cause`` is sigint / sigterm / timeout."""

    cause: str = "sigint"

    @property
    def exit_code(self) -> int:  # type: ignore[override]  # depends on why it stopped
        return INTERRUPT_EXIT.get(self.cause, 130)


def statement_timeout() -> float:
    """The time limit of one ``govlake sql`` call in seconds ($GOVLAKE_SQL_TIMEOUT, default 300; 0 = none)."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        raise QueryError(f"环境变量 {TIMEOUT_ENV} 应为秒数，当前为 {raw!r}", hint=f"例如 {TIMEOUT_ENV}=600；0 表示不限时") from None
    if value < 0:
        raise QueryError(f"环境变量 {TIMEOUT_ENV} 不能为负数：{raw}", hint=f"例如 {TIMEOUT_ENV}=600；0 表示不限时")
    return value


@dataclass
class QueryResult:
    table: pa.Table
    role: str


Describe = Callable[[str, str], tuple[str, dict[str, str]]]  # (layer, table) -> table and column descriptions


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def comment_views(con: duckdb.DuckDBPyConnection, layer: str, name: str, describe: Describe | None) -> None:
    """Attach the table's and its columns' descriptions (DuckDB COMMENT ON), visible in duckdb_views() and
    duckdb_columns() and in SQL clients that show comments."""
    if describe is None:
        return
    table_text, columns = describe(layer, name)
    if table_text:
        is_view = con.execute("SELECT count(*) FROM duckdb_views() WHERE schema_name = ? AND view_name = ?",
                              [layer, name]).fetchall()[0][0]
        con.execute(f'COMMENT ON {"VIEW" if is_view else "TABLE"} "{layer}"."{name}" IS {_quote(table_text)}')
    present = {r[0] for r in con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE schema_name = ? AND table_name = ?", [layer, name]).fetchall()}
    if OBJECTION_COLUMN in present:
        columns = {**columns, OBJECTION_COLUMN: columns.get(OBJECTION_COLUMN) or OBJECTION_DESCRIPTION}
    for col, text in columns.items():
        if col in present and text:
            con.execute(f'COMMENT ON COLUMN "{layer}"."{name}"."{col}" IS {_quote(text)}')


# -- masking ----------------------------------------------------------------------------------------------
def _char_offsets(text: str) -> dict[int, int]:
    """Byte offset (DuckDB's tokenizer positions) -> character index (sqlglot's)."""
    out, pos = {}, 0
    for i, ch in enumerate(text):
        out[pos] = i
        pos += len(ch.encode("utf-8", "surrogatepass"))
    out[pos] = len(text)
    return out


def _is_secret(tok, known: set[str]) -> bool:
    """A literal, or an identifier that is no name of the session and looks like data (non-ASCII text or
    a digit run: a double-quoted "张三" typed as if it were a string)."""
    if tok.token_type in LITERAL_TOKENS:
        return True
    return tok.token_type in (TokenType.IDENTIFIER, TokenType.VAR) and tok.text not in known and (
        not tok.text.isascii() or bool(DIGIT_RUN.search(tok.text)))


def _tokens(text: str) -> list | None:
    try:
        return DuckDB().tokenizer().tokenize(text)
    except Exception:  # sqlglot's TokenError, or anything a hostile string provokes
        return None


def mask_statement(text: str, known: set[str] = frozenset()) -> str | None:
    """The statement with every string and number literal (and data-like identifier) replaced by ``?`` and
    comments dropped, or None when it cannot be tokenized safely (then only the keyed digest is stored).

    DuckDB's own tokenizer is the cross-check: a literal it sees that sqlglot did not mask means the two
    disagree on where the text's literals are, and nothing is stored.
    """
    tokens = _tokens(text)
    if tokens is None:
        return None
    parts: list[str] = []
    masked_spans: list[tuple[int, int]] = []
    for tok in tokens:
        if _is_secret(tok, known):
            parts.append("?" if tok.token_type in LITERAL_TOKENS else '"?"')
            masked_spans.append((tok.start, tok.end))
        else:
            parts.append(text[tok.start:tok.end + 1])
    offsets = _char_offsets(text)
    try:
        duck_literals = [offsets.get(pos) for pos, kind in duckdb.tokenize(text)
                         if kind in (duckdb.token_type.string_const, duckdb.token_type.numeric_const)]
    except Exception:
        return None
    for start in duck_literals:  # a prefix letter (x'ff', E'..') may stand just before sqlglot's span
        if start is None or not any(a - 1 <= start <= b for a, b in masked_spans):
            return None
    return DIGIT_RUN.sub(lambda m: "#" * len(m.group()), " ".join(parts))


def _scrub(message: str, text: str, known: set[str] = frozenset()) -> str:
    """DuckDB's first message line without the statement's literal values and data-like identifiers
    (which may be personal data), and with digit runs masked."""
    line = message.splitlines()[0] if message else ""
    secrets = {t.text for t in _tokens(text) or [] if _is_secret(t, known) and len(t.text) >= 2}
    for value in sorted(secrets, key=len, reverse=True):
        line = line.replace(value, "***")
    # what the tokenizer could not delimit (an unterminated string): quoted non-ASCII fragments go too
    line = QUOTED.sub(lambda m: m.group(0) if m.group(0).isascii() else '"***"', line)
    return DIGIT_RUN.sub(lambda m: "#" * len(m.group()), line)


# -- audit ----------------------------------------------------------------------------------------------
@dataclass
class AuditEntry:
    """One statement's audit row: what it was (masked), what happened, what it read, how many rows."""

    index: int
    text: str
    statement_type: str = "UNKNOWN"
    status: str = "skipped"  # ok / denied / error / skipped / interrupted / timeout
    reason: str | None = None  # a short code of ours, never user text (kept in the session, not the log)
    rows: int | None = None
    at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    duration_ms: float | None = None
    tables: set[str] = field(default_factory=set)  # layer.name of every lake table the statement names
    grant_ids: set[int] = field(default_factory=set)  # grants through which those tables are read


def audit_events(entries: list[AuditEntry], request_id: str, known: set[str] = frozenset()) -> list:
    """The control-plane audit events of ``entries``: one per statement, action ``sql``."""
    from govlake.control.audit import AuditEvent

    return [AuditEvent(action="sql", outcome=e.status, tables=sorted(e.tables), grant_ids=sorted(e.grant_ids),
                       rows=e.rows, detail=mask_statement(e.text, known), digest_text=e.text,
                       request_id=request_id, at=e.at) for e in entries]


def write_audit(lake: Lake, principal: Principal, entries: list[AuditEntry], request_id: str,
                failure: BaseException | None, known: set[str] = frozenset()) -> None:
    """Record one audit event per statement; raise if that is impossible, so no result leaves unaudited."""
    from govlake.control.audit import record

    try:
        record(lake.settings, principal, *audit_events(entries, request_id, known))
    except Exception as exc:
        what = "查询结果不予返回" if failure is None else "查询也未成功"
        raise QueryError(
            f"无法写入 SQL 审计记录（控制库 audit_log），为安全起见{what}",
            where=getattr(exc, "where", None) or "控制库 audit_log",
            hint="检查控制库（GOVLAKE_CONTROL_DB）是否可写、假名化密钥是否可用（GOVLAKE_PSEUDONYM_KEY），然后重试",
        ) from exc


@dataclass
class _Statement:
    entry: AuditEntry
    parsed: duckdb.Statement
    kind: duckdb.StatementType | None  # None: a type the Python API cannot name
    synthetic: bool = False  # generated by DuckDB's parser (a dynamic PIVOT's CREATE TYPE), no text of its own

    @property
    def reads(self) -> bool:
        """A read: a SELECT as DuckDB parses it, or a pragma that only describes the session."""
        return self.kind in READ_TYPES or (self.kind == ST.PRAGMA and _pragma_name(self.entry.text) in READ_PRAGMAS)


def _mark_internal(entries: list[AuditEntry], sql: str) -> None:
    """An unexpected failure (a bug, an interrupt) is charged to the statement that was running."""
    running = next((e for e in entries if e.status == "skipped"), None)
    if running is None:
        running = AuditEntry(len(entries), sql)
        entries.append(running)
    running.status, running.reason = "error", "internal"


def _words(text: str) -> list[tuple[str, "duckdb.token_type"]]:
    """The text of every token DuckDB's tokenizer sees (comments skipped), with its kind."""
    try:
        tokens = duckdb.tokenize(text)
    except Exception:
        return []
    offsets = _char_offsets(text)
    starts = [offsets.get(pos, 0) for pos, _ in tokens] + [len(text)]
    return [(text[a:b].strip(), kind) for (a, b), (_, kind) in zip(zip(starts, starts[1:]), tokens)]


def _pragma_name(text: str) -> str | None:
    """The name of a PRAGMA statement, lower-cased and unquoted."""
    words = _words(text)
    if len(words) < 2 or words[0][0].lower() != "pragma":
        return None
    return words[1][0].strip('"').lower()


def _called_names(text: str) -> list[str]:
    """Every name DuckDB's tokenizer sees directly before ``(`` (``f(``, ``main.f (``, ``"f"(``, ``x.f(``
    method syntax), lower-cased and unquoted, plus the name after a leading PRAGMA.

    Deliberately wider than the parse tree's function calls (a type ``DECIMAL(10,2)`` or an alias column list
    ``t(a, b)`` is listed too) and the same for every statement type: a name that is no function is ignored
    by the caller, and nothing the parser would call can be missed."""
    words = _words(text)
    names = []
    for i, (word, kind) in enumerate(words):
        if kind not in (duckdb.token_type.identifier, duckdb.token_type.keyword):
            continue
        name = word.strip('"').lower()
        if i + 1 < len(words) and words[i + 1][0].startswith("("):
            names.append(name)
        elif i > 0 and words[i - 1][0].lower() == "pragma":
            names.append(name)
    return names


def as_principal(lake: Lake, who: "Principal | str", registry: "Registry") -> Principal:
    """A principal as given, or a role name: the lake owner's local session narrowed to that role (what
    ``govlake sql --role`` runs as; every remote surface passes an authenticated Principal)."""
    if isinstance(who, Principal):
        return who
    if who not in ROLES:
        raise UNKNOWN_ROLE.error(AccessDenied, role=who, roles=", ".join(ROLES))
    return Principal.owner_of(registry).narrowed(who)


def _registry(lake: Lake) -> "Registry":
    from govlake.registry import load_registry

    return load_registry(lake.settings.catalog_dir, lake.settings.schemas_dir)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def duckdb_types(con: duckdb.DuckDBPyConnection, fields: list[pa.Field]) -> dict[str, str]:
    """DuckDB's type name of each Arrow field (for a masked column's typed NULL)."""
    if not fields:
        return {}
    con.register("__govlake_types", pa.schema(fields).empty_table())
    try:
        return {r[0]: r[1] for r in con.execute('DESCRIBE "__govlake_types"').fetchall()}
    finally:
        con.unregister("__govlake_types")


def objection_refs(settings) -> dict[str, dict[str, set[str]]]:
    """Open objections' record refs by table and key column, read once per session or export."""
    from govlake.control.objections import open_refs_by_table

    return open_refs_by_table(settings)


def _ref_expression(key: str) -> Any:
    """A record ref of a key (columns joined by '|', as objections store composite keys) as an expression."""
    import pyarrow.compute as pc
    import pyarrow.dataset as pads

    parts = [pads.field(c).cast(pa.string()) for c in key.split("|")]
    return parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, "|")


@dataclass
class TableSource:
    """One visible table as registered: the source DuckDB scans and the SELECT list of its view."""

    access: TableAccess
    source: Any
    select: str
    flagged: bool = False  # some rows carry an open objection (the marker is computed in the source)


def table_source(con: duckdb.DuckDBPyConnection, lake: Lake, access: TableAccess,
                 disputed: dict[str, dict[str, set[str]]]) -> TableSource | None:
    """The policy applied below DuckDB: the snapshot's dataset filtered to the principal's rows and
    projected to its unmasked columns (``Lake.scan_source``), and the view's SELECT list over it, which puts
    masked columns back as constants (same order) and adds the objection marker."""
    import pyarrow.compute as pc
    import pyarrow.dataset as pads

    dt = lake.table(access.layer, access.name)
    if dt is None:
        return None
    schema = lake.dataset(dt).schema
    read = access.read_columns(schema.names)
    refs = {} if access.layer not in OBJECTION_LAYERS else {
        k: v for k, v in disputed.get(f"{access.layer}.{access.name}", {}).items()
        if v and set(k.split("|")) <= set(schema.names)}
    marker = access.layer in OBJECTION_LAYERS and OBJECTION_COLUMN not in schema.names
    columns: Any = None if access.unrestricted and not refs else read
    if refs:  # computed in pyarrow from the key column, which need not be visible itself
        flagged = None
        for key, values in refs.items():
            term = _ref_expression(key).isin(pa.array(sorted(values), pa.string()))
            flagged = term if flagged is None else flagged | term
        columns = {c: pads.field(c) for c in read}
        columns[OBJECTION_COLUMN] = pc.if_else(flagged, pa.scalar(OBJECTION_TEXT), pa.scalar(None, pa.string()))
    src = lake.scan_source(dt, columns=columns, filter=access.arrow_filter())
    types = duckdb_types(con, [schema.field(c) for c in access.masked])
    items = []
    for c in access.visible(schema.names):
        if c not in access.masked:
            items.append(_ident(c))
        elif pa.types.is_string(schema.field(c).type) or pa.types.is_large_string(schema.field(c).type) \
                or pa.types.is_string_view(schema.field(c).type):
            items.append(f"{_quote(MASK_TEXT)}::VARCHAR AS {_ident(c)}")
        else:
            items.append(f"CAST(NULL AS {types[c]}) AS {_ident(c)}")
    if marker:
        items.append(_ident(OBJECTION_COLUMN) if refs else f"CAST(NULL AS VARCHAR) AS {_ident(OBJECTION_COLUMN)}")
    return TableSource(access, src, ", ".join(items) or "*", flagged=bool(refs))


class SqlSession:
    def __init__(self, lake: Lake, principal: "Principal | str" = "analyst", describe: Describe | None = None,
                 registry: "Registry | None" = None) -> None:
        self.lake = lake
        self.registry = registry if registry is not None else _registry(lake)
        self.principal = as_principal(lake, principal, self.registry)
        self.role = self.principal.role
        self.describe = describe
        self.access: dict[tuple[str, str], TableAccess] = resolve(self.principal, lake, self.registry)
        self.layers = tuple(layer for layer in LAYER_ORDER if any(k[0] == layer for k in self.access)) or ("gold",)
        self.tables: dict[str, list[str]] = {layer: [n for (lay, n) in self.access if lay == layer] for layer in LAYER_ORDER}
        self.con = duckdb.connect(config={"threads": lake.settings.duckdb_threads,
                                          "memory_limit": lake.settings.duckdb_memory_limit})
        self._arrow: list[object] = []
        self._aliases: set[str] = set()
        self._pending_temp: set[str] = set()  # TEMP objects created by earlier statements of the same string
        self._build()
        self.known_names = self._names()
        self.function_kinds = self._function_kinds()
        self.interrupted: str | None = None  # sigint / sigterm / timeout once interrupt() was called

    def _build(self) -> None:
        """Views over policy-filtered Arrow datasets (no DuckDB file access needed), then lock the sandbox."""
        con = self.con
        for layer in ("gold",) + tuple(lay for lay in LAYER_ORDER if self.tables[lay] and lay != "gold"):
            con.execute(f'CREATE SCHEMA IF NOT EXISTS "{layer}"')
        disputed = objection_refs(self.lake.settings)
        for (layer, name), access in self.access.items():
            ts = table_source(con, self.lake, access, disputed)  # read by pyarrow's native filesystem, never by DuckDB
            if ts is None:
                continue
            alias = f"__{layer}__{name}"
            con.register(alias, ts.source)
            self._arrow.append(ts.source)
            self._aliases.add(alias)
            con.execute(f'CREATE VIEW "{layer}"."{name}" AS SELECT {ts.select} FROM "{alias}"')
            comment_views(con, layer, name, self.describe)
        for setting, value in SANDBOX_SETTINGS:
            con.execute(f"SET {setting} = {value}")

    def _names(self) -> set[str]:
        """Schema, table and column names of the session: identifiers the audit may keep in clear."""
        rows = self.con.execute("SELECT schema_name, table_name, column_name FROM duckdb_columns()").fetchall()
        return {n for row in rows for n in row if n}

    def _function_kinds(self) -> dict[str, set[str]]:
        """Every function name DuckDB knows -> its kinds (a name can be scalar and table at once)."""
        kinds: dict[str, set[str]] = {}
        for name, kind in self.con.execute("SELECT DISTINCT function_name, function_type FROM duckdb_functions()").fetchall():
            kinds.setdefault(name.lower(), set()).add(kind)
        return kinds

    def interrupt(self, reason: str = "sigint") -> None:
        """Stop the running statement (safe from a signal handler or another thread) and run no further one."""
        self.interrupted = reason
        self.con.interrupt()

    # -- the one entry point --------------------------------------------------------------------------
    def query(self, sql: str) -> QueryResult:
        """Admit, run and audit every statement of ``sql``; the last statement's result is returned.

        Nothing runs unless every statement is admitted; every statement gets an audit row whatever its
        outcome, and if those rows cannot be written the result is withheld (fail closed).
        """
        request_id = uuid.uuid4().hex
        entries: list[AuditEntry] = []
        result: pa.Table | None = None
        failure: BaseException | None = None
        self._pending_temp: set[str] = set()
        try:
            statements = self._split(sql, entries)
            for st in statements:
                self._admit(st)
            result = self._run(statements)
        except BaseException as exc:  # audited below whatever it is, then re-raised
            if not isinstance(exc, GovlakeError):
                _mark_internal(entries, sql)
            failure = exc
        self._write_audit(entries, request_id, failure)
        if failure is not None:
            raise failure
        assert result is not None
        return QueryResult(table=result, role=self.role)

    def _split(self, sql: str, entries: list[AuditEntry]) -> list[_Statement]:
        """Statements as DuckDB's parser sees them; a string it cannot parse is one errored audit entry."""
        try:
            parsed = self.con.extract_statements(sql)
        except duckdb.Error as exc:
            entries.append(AuditEntry(0, sql, status="error", reason="parse_error"))
            raise QueryError(f"SQL 语法错误：{_scrub(str(exc), sql)}",
                             hint="检查引号、括号与 $$ 字符串是否成对；表名写作 <层>.<表名>") from None
        if not parsed:
            entries.append(AuditEntry(0, sql, status="error", reason="empty"))
            raise QueryError("没有可执行的 SQL 语句", hint='例如：govlake sql "SELECT * FROM gold.district_profile"')
        statements = []
        for i, p in enumerate(parsed):
            try:
                kind = p.type
            except duckdb.Error:  # a statement type the Python API does not know (UPDATE EXTENSIONS): not a read
                kind = None
            name = kind.name if kind is not None and kind.name.isidentifier() else "UNKNOWN"
            entry = AuditEntry(i, p.query or sql, statement_type=name)
            entries.append(entry)
            statements.append(_Statement(entry, p, kind, synthetic=not p.query.strip()))
        return statements

    # -- admission ------------------------------------------------------------------------------------
    def _admit(self, st: _Statement) -> None:
        """Refuse, before anything runs, a statement that is not a read (or a write on a TEMP object) or
        that names a layer the role may not read."""
        try:
            if st.reads:  # a read pragma's sqlglot tree has no table: only the role's tables exist anyway
                tree = self._parse(st.entry.text)
            elif st.kind == ST.EXPLAIN:
                tree = self._admit_explain(st)
            elif st.kind in TEMP_WRITE_TYPES:
                tree = self._admit_temp_write(st)
            else:
                st.entry.reason = "not_read_only"
                raise self._not_read_only(st.entry.statement_type if st.entry.statement_type != "UNKNOWN" else "该类")
            self._check_functions(st)
            if tree is not None:
                self._check_refs(tree, st.entry)
        except AccessDenied:
            st.entry.status, st.entry.reason = "denied", st.entry.reason or "layer_not_allowed"
            raise
        except QueryError:
            st.entry.status, st.entry.reason = "error", st.entry.reason or "unknown_table"
            raise

    def _check_functions(self, st: _Statement) -> None:
        """Refuse a call of a function not known to be free of side effects (``enable_logging(...)``, a file
        reader, ``query('...')``): some of them fail inside DuckDB in a way that aborts the whole process."""
        for name in _called_names(st.entry.text):
            kinds = self.function_kinds.get(name)
            if not kinds or name in SAFE_TABLE_FUNCTIONS:
                continue
            if name in DENIED_SCALARS or not kinds <= set(UNRESTRICTED_KINDS):
                st.entry.reason = "function_not_allowed"
                raise AccessDenied(
                    f"角色 {self.role}（{ROLE_NAMES[self.role]}）的 SQL 会话不允许调用函数 {name}()",
                    hint="该函数可能读写文件、修改会话配置或日志；请通过 <层>.<表名> 查询已授权的表，"
                         "表函数仅可用 range / generate_series / unnest / duckdb_tables 等只读函数")

    def _not_read_only(self, what: str) -> AccessDenied:
        return AccessDenied(
            f"角色 {self.role}（{ROLE_NAMES[self.role]}）的 SQL 会话只读：不允许 {what} 语句",
            hint="只能执行查询（SELECT / WITH / DESCRIBE / SHOW / EXPLAIN）；"
                 "中间结果可用 CREATE TEMP TABLE（仅本次会话内存）；导出结果请用 --format csv 或 json",
        )

    @staticmethod
    def _parse(text: str) -> exp.Expression | None:
        """sqlglot's tree of one statement, or None when sqlglot cannot parse it (a read is then still
        safe: the session holds only the role's schemas and can touch no file)."""
        try:
            trees = sqlglot.parse(text, read="duckdb")
        except (sqlglot.errors.ParseError, sqlglot.errors.TokenError):
            return None
        trees = [t for t in trees if t is not None]
        return trees[0] if len(trees) == 1 else None

    def _admit_explain(self, st: _Statement) -> exp.Expression | None:
        """EXPLAIN [ANALYZE] of a read only: EXPLAIN ANALYZE executes its statement."""
        m = re.match(r"\s*EXPLAIN\s+(?:ANALY[SZ]E\s+)?", st.entry.text, re.IGNORECASE)
        inner = st.entry.text[m.end():] if m else ""
        try:
            kinds = [p.type for p in self.con.extract_statements(inner)] if inner.strip() else []
        except duckdb.Error:
            kinds = []
        if kinds != [ST.SELECT]:
            st.entry.reason = "explain_not_read"
            raise self._not_read_only("EXPLAIN（仅可解释查询语句）")
        return self._parse(inner)

    def _admit_temp_write(self, st: _Statement) -> exp.Expression:
        """CREATE TEMP TABLE/VIEW, and INSERT/UPDATE/DELETE/DROP on an existing TEMP table or view."""
        tree = None if st.synthetic else self._parse(st.entry.text)
        what = "动态 PIVOT（请在 ON 列后写明 IN (取值, ...)）" if st.synthetic else st.kind.name
        if isinstance(tree, exp.Create):
            temp = any(isinstance(p, exp.TemporaryProperty) for p in (tree.args.get("properties") or exp.Properties()).expressions)
            target = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
            if temp and str(tree.args.get("kind", "")).upper() in TEMP_CREATE_KINDS and isinstance(target, exp.Table) \
                    and target.catalog in ("", "temp") and target.db in ("", "main") and target.name not in self._aliases:
                self._pending_temp.add(target.name)  # later statements of the same string may use it
                return tree
            what = "CREATE（仅允许 CREATE TEMP TABLE / CREATE TEMP VIEW）"
        elif isinstance(tree, (exp.Insert, exp.Update, exp.Delete, exp.Drop)):
            targets = tree.args.get("tables") if isinstance(tree, exp.Drop) else [tree.this]
            targets = [t.this if isinstance(t, exp.Schema) else t for t in (targets or [])]
            if targets and all(isinstance(t, exp.Table) and self._is_temp(t) for t in targets):
                return tree
            what = f"{st.kind.name}（仅允许作用于本会话的临时表）"
        st.entry.reason = "not_read_only"
        raise self._not_read_only(what)

    def _is_temp(self, table: exp.Table) -> bool:
        """An existing session TEMP table or view the user created (not one of our dataset aliases)."""
        if table.catalog not in ("", "temp") or table.db not in ("", "main") or table.name in self._aliases:
            return False
        if table.name in self._pending_temp:
            return True
        # fetchall: since DuckDB 2 a DB-API result holds the connection until it is read to the end
        (found,), = self.con.execute(
            "SELECT count(*) FROM (SELECT table_name AS n FROM duckdb_tables() WHERE temporary "
            "UNION ALL SELECT view_name FROM duckdb_views() WHERE temporary AND NOT internal) WHERE n = ?",
            [table.name]).fetchall()
        return bool(found)

    def _check_refs(self, tree: exp.Expression, entry: AuditEntry | None = None) -> None:
        """Refuse references to tables the principal may not read (with how to apply for access) and to the
        internal dataset aliases behind the views; note the tables and grants read for the audit."""
        for t in tree.find_all(exp.Table):
            layer, name = t.db, t.name
            if layer not in LAYER_ORDER:
                if name.lower().startswith("__"):
                    raise AccessDenied(f"不能直接查询内部对象 {name}",
                                       hint="请通过 <层>.<表名> 查询已授权的表，例如 gold.population")
                continue
            access = self.access.get((layer, name))
            if access is not None:
                if entry is not None:
                    entry.tables.add(access.qualified)
                    entry.grant_ids.update(access.grant_ids)
                continue
            if entry is not None:
                entry.tables.add(f"{layer}.{name}")
            known = self.tables[layer]
            if name in self._existing(layer) or (not known and layer != "gold"):  # gold is everyone's
                raise refusal(self.principal, layer, name, self.registry)
            raise QueryError(
                f"表 {layer}.{name} 不存在（或尚无数据）",
                hint=did_you_mean(name, set(known)) or (f"{layer} 层现有：{', '.join(known)}" if known else "先运行 govlake run"),
            )

    def _existing(self, layer: str) -> set[str]:
        return set(self.lake.list_tables(layer))

    # -- execution ------------------------------------------------------------------------------------
    def _run(self, statements: list[_Statement]) -> pa.Table:
        result = pa.table({})
        for st in statements:
            entry = st.entry
            started = time.perf_counter()
            try:
                if self.interrupted:  # a signal between two statements: run no further one
                    raise duckdb.InterruptException("interrupted before the statement")
                # A relation's Arrow output (DuckDB 2 copies a DB-API result's); a statement that is no read
                # runs once, at sql(), and its relation holds the result.
                result = self.con.sql(st.parsed).to_arrow_table()
            except duckdb.InterruptException:
                entry.reason = self.interrupted or "sigint"
                entry.status = "timeout" if entry.reason == "timeout" else "interrupted"
                raise self._interrupted_error() from None
            except duckdb.PermissionException:
                entry.status, entry.reason = "denied", "permission"
                raise AccessDenied(
                    f"角色 {self.role}（{ROLE_NAMES[self.role]}）不能读写文件、附加数据库或安装扩展",
                    hint="请通过 <层>.<表名> 查询已授权的表",
                ) from None
            except duckdb.Error as exc:
                entry.status, entry.reason = "error", type(exc).__name__
                raise QueryError(f"查询失败：{_scrub(str(exc), entry.text, self.known_names)}",
                                 hint="用 SELECT * FROM information_schema.tables 查看可查询的表") from None
            finally:
                entry.duration_ms = round((time.perf_counter() - started) * 1000, 3)
            entry.status = "ok"
            entry.rows = result.num_rows if st.reads or st.kind == ST.EXPLAIN else None
        return result

    def _interrupted_error(self) -> QueryInterrupted:
        if self.interrupted == "timeout":
            err = QueryInterrupted(f"查询超过时间限制（{statement_timeout():g} 秒），已中断",
                                   hint=f"缩小查询范围（WHERE / LIMIT），或设置环境变量 {TIMEOUT_ENV}=<秒数> 放宽限制（0 表示不限时）")
        else:
            err = QueryInterrupted("查询已中断", hint="未返回任何结果；本次查询已记入审计")
        err.cause = self.interrupted or "sigint"
        return err

    def _write_audit(self, entries: list[AuditEntry], request_id: str, failure: BaseException | None) -> None:
        write_audit(self.lake, self.principal, entries, request_id, failure, self.known_names)

    def close(self) -> None:
        self.con.close()


# -- interruptible run ------------------------------------------------------------------------------------
def run_interruptible(session: SqlSession, sql: str, timeout: float | None = None) -> QueryResult:
    """``session.query(sql)`` that Ctrl-C, SIGTERM and the time limit stop cleanly, with an audit row.

    A Python signal handler only runs between bytecodes, never while DuckDB executes, so the query runs in
    a worker thread while this (main) thread waits, turns a signal into ``con.interrupt()`` and enforces the
    time limit; the worker then audits the statement as interrupted / timeout and raises QueryInterrupted.
    """
    timeout = statement_timeout() if timeout is None else timeout
    outcome: dict[str, object] = {}

    def work() -> None:
        try:
            outcome["result"] = session.query(sql)
        except BaseException as exc:  # handed to the main thread
            outcome["error"] = exc

    worker = threading.Thread(target=work, name="govlake-sql", daemon=True)
    previous = _install_handlers(session)
    try:
        worker.start()
        deadline = time.monotonic() + timeout if timeout > 0 else None
        while worker.is_alive():
            worker.join(0.1)
            if deadline is not None and time.monotonic() > deadline and not session.interrupted:
                session.interrupt("timeout")
    finally:
        _restore_handlers(previous)
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["result"]  # type: ignore[return-value]


def _install_handlers(session: SqlSession) -> dict[int, object]:
    """SIGINT and SIGTERM interrupt the session's query (only the main thread may install handlers)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}
    for sig, cause in ((signal.SIGINT, "sigint"), (signal.SIGTERM, "sigterm")):
        previous[sig] = signal.signal(sig, lambda _n, _f, cause=cause: session.interrupt(cause))
    return previous


def _restore_handlers(previous: dict[int, object]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)  # type: ignore[arg-type]


# -- output -------------------------------------------------------------------------------------------------
def _is_nested(t: pa.DataType) -> bool:
    return pa.types.is_nested(t) or (pa.types.is_dictionary(t) and pa.types.is_nested(t.value_type))


def display_value(value: object) -> str:
    """A cell as text: nested values (lists, maps, structs) as JSON, None as empty."""
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def display_rows(table: pa.Table) -> list[list[str]]:
    """Rows of text cells for the terminal table (maps as JSON objects)."""
    return [[display_value(v) for v in row.values()] for row in table.to_pylist(maps_as_pydicts="lossy")]


def _duckdb_text(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """A column as DuckDB's own VARCHAR text: for what Python cannot hold (an interval of 2**31 days, a
    date beyond year 9999) and what Arrow cannot cast to text (intervals)."""
    con = duckdb.connect()
    try:
        con.register("c", pa.table({"v": col}))
        return con.sql("SELECT v::VARCHAR AS v FROM c").to_arrow_table().column("v")
    finally:
        con.close()


def text_safe_table(table: pa.Table) -> pa.Table:
    """Nested columns replaced by JSON text and intervals by DuckDB's text, so every column is writable as
    CSV (``safe_arrow_table`` then makes every text inert, whatever its type was)."""
    columns = []
    for name, col in zip(table.column_names, table.columns):
        if _is_nested(col.type):
            try:
                col = pa.array([None if v is None else display_value(v)
                                for v in col.to_pylist(maps_as_pydicts="lossy")], pa.string())
            except (OverflowError, ValueError, pa.ArrowException):
                col = _duckdb_text(col)
        elif pa.types.is_interval(col.type) or pa.types.is_duration(col.type):
            col = _duckdb_text(col)
        columns.append(col)
    return pa.table(columns, names=table.column_names)


def render_csv(table: pa.Table) -> str:
    """The result as UTF-8 CSV text (header row quoted, as pyarrow writes it). Nested values become JSON
    text and formula-like text (``=HYPERLINK(...)``) is made inert, as in every CSV govlake writes."""
    import pyarrow.csv as pacsv

    from govlake.exports import safe_arrow_table

    out = io.BytesIO()
    pacsv.write_csv(safe_arrow_table(text_safe_table(table)), out)
    return out.getvalue().decode("utf-8")


# -- export -------------------------------------------------------------------------------------------------
def _refuse_existing(path: Path, force: bool) -> None:
    if path.is_dir():
        raise QueryError(f"导出路径是一个目录：{path}", where=str(path), hint="请指定一个 .duckdb 文件名，例如 analyst.duckdb")
    if (path.exists() or path.is_symlink()) and not force:
        raise QueryError(f"导出文件已存在：{path}", where=str(path),
                         hint="换一个文件名，或确认可以覆盖后加 --force（只替换这个文件）")
    if not path.parent.is_dir():
        raise QueryError(f"导出目录不存在：{path.parent}", where=str(path), hint="先创建该目录，或换一个路径")


def export_duckdb(lake: Lake, path: str, principal: "Principal | str" = "analyst", describe: Describe | None = None,
                  force: bool = False, registry: "Registry | None" = None) -> dict[str, int]:
    """``_export_duckdb`` with an audit event (action sql, the path masked, a keyed digest of it): the file
    hands out what the principal may read as a query does. Fails closed: if the event cannot be written,
    the new file is removed again."""
    registry = registry if registry is not None else _registry(lake)
    principal = as_principal(lake, principal, registry)
    entry = AuditEntry(0, f"EXPORT DUCKDB {_quote(str(Path(path).absolute()))}", statement_type="EXPORT")
    started = time.perf_counter()
    failure: BaseException | None = None
    counts: dict[str, int] = {}
    try:
        counts = _export_duckdb(lake, path, principal, describe, force, registry, entry)
        entry.status, entry.rows = "ok", sum(counts.values())
    except BaseException as exc:  # audited below whatever it is, then re-raised
        entry.status = "denied" if isinstance(exc, AccessDenied) else "error"
        entry.reason = "refused" if isinstance(exc, GovlakeError) else "internal"
        failure = exc
    entry.duration_ms = round((time.perf_counter() - started) * 1000, 3)
    try:
        write_audit(lake, principal, [entry], uuid.uuid4().hex, failure)
    except QueryError:
        if failure is None:
            Path(path).unlink(missing_ok=True)
        raise
    if failure is not None:
        raise failure
    return counts


def _export_duckdb(lake: Lake, path: str, principal: Principal, describe: Describe | None, force: bool,
                   registry: "Registry", entry: AuditEntry) -> dict[str, int]:
    """A DuckDB database file of what the principal may read, for the DuckDB CLI or any SQL client.

    A table the principal reads whole becomes a view over the Parquet files of its current Delta snapshot
    (no data copied; re-export after new runs); a table it reads filtered, projected or masked is copied in
    through the same policy-restricted source as a query session, so the file holds nothing the principal
    could not query. It carries the table and column descriptions. An existing file is replaced only with
    ``force`` (never a directory), and only once the new file is complete: it is built beside the target and
    renamed over it.
    """
    if not lake.settings.is_local:
        raise QueryError("对象存储上的数据湖暂不支持导出 DuckDB 文件", hint="在本地数据湖上导出，或直接使用 govlake sql")
    target = Path(path)
    _refuse_existing(target, force)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    access = resolve(principal, lake, registry)
    disputed = objection_refs(lake.settings)
    counts: dict[str, int] = {}
    try:
        con = duckdb.connect(str(tmp))
        try:
            os.chmod(tmp, 0o600)
            for layer in LAYER_ORDER:
                if layer == "gold" or any(k[0] == layer for k in access):
                    con.execute(f'CREATE SCHEMA IF NOT EXISTS "{layer}"')
                    counts[layer] = 0
            for (layer, name), acc in access.items():
                if _export_table(con, lake, acc, disputed):
                    comment_views(con, layer, name, describe)
                    counts[layer] += 1
                    entry.tables.add(acc.qualified)
                    entry.grant_ids.update(acc.grant_ids)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        _refuse_existing(target, force)  # nothing appeared there meanwhile
        os.replace(tmp, target)
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            if leftover.exists():
                leftover.unlink()
    return counts


def _export_table(con: duckdb.DuckDBPyConnection, lake: Lake, access: TableAccess,
                  disputed: dict[str, dict[str, set[str]]]) -> bool:
    """One table into the export: a view over its files when read whole, else a copy of the restricted
    source (filtered rows, projected and masked columns, the objection marker)."""
    ts = table_source(con, lake, access, disputed)
    if ts is None:
        return False
    layer, name = access.layer, access.name
    target = f'"{layer}"."{name}"'
    if access.unrestricted and not ts.flagged:
        files = lake.table(layer, name).file_uris()
        if not files:
            return False
        flist = ", ".join(_quote(f) for f in files)
        con.execute(f"CREATE VIEW {target} AS SELECT {ts.select} FROM read_parquet([{flist}], union_by_name = true)")
        return True
    alias = f"__export__{layer}__{name}"
    con.register(alias, ts.source)
    try:
        con.execute(f'CREATE TABLE {target} AS SELECT {ts.select} FROM "{alias}"')
    finally:
        con.unregister(alias)
    return True
