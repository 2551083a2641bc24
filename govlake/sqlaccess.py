"""Role-scoped SQL over the lake's Delta tables (``govlake sql``).

Each role gets a DuckDB session in which only its layers exist as schemas (``gold.population``,
``silver.market_entities`` ...). The session is sandboxed: file access is limited to the role's layer
directories, external access is disabled and the configuration is locked, so ``read_parquet`` on a bronze
file or ``ATTACH`` cannot bypass the role. Every query is audited in ``meta.sql_audit`` (with digit runs
masked, since literals may carry personal data).
"""

from __future__ import annotations

import getpass
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

import duckdb
import pyarrow as pa
import sqlglot
from sqlglot import exp

from govlake.errors import AccessDenied, QueryError, did_you_mean
from govlake.lake import Lake

ROLES: dict[str, tuple[str, ...]] = {
    "analyst": ("gold",),
    "steward": ("gold", "silver", "quarantine", "meta"),
    "admin": ("gold", "silver", "quarantine", "meta", "bronze"),
}
ROLE_NAMES = {"analyst": "分析人员", "steward": "数据管理员", "admin": "系统管理员"}
AUDIT = "sql_audit"


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
        con.execute(f'COMMENT ON VIEW "{layer}"."{name}" IS {_quote(table_text)}')
    present = {r[0] for r in con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE schema_name = ? AND table_name = ?", [layer, name]).fetchall()}
    for col, text in columns.items():
        if col in present and text:
            con.execute(f'COMMENT ON COLUMN "{layer}"."{name}"."{col}" IS {_quote(text)}')


class SqlSession:
    def __init__(self, lake: Lake, role: str = "analyst", describe: Describe | None = None) -> None:
        if role not in ROLES:
            raise AccessDenied(f"未知角色：{role}", hint=f"可选角色：{', '.join(ROLES)}")
        self.lake = lake
        self.role = role
        self.layers = ROLES[role]
        self.describe = describe
        self.tables: dict[str, list[str]] = {layer: lake.list_tables(layer) for layer in self.layers}
        self.con = duckdb.connect()
        self._arrow: list[object] = []
        self._build()

    def _build(self) -> None:
        con = self.con
        local = self.lake.settings.is_local
        for layer in self.layers:
            con.execute(f'CREATE SCHEMA IF NOT EXISTS "{layer}"')
            for name in self.tables[layer]:
                dt = self.lake.table(layer, name)
                files = dt.file_uris() if dt is not None else []
                if local and files:
                    flist = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
                    con.execute(f'CREATE VIEW "{layer}"."{name}" AS SELECT * FROM read_parquet([{flist}], union_by_name = true)')
                elif dt is not None:
                    src = dt.to_pyarrow_dataset()  # S3 lakes, and empty tables with no files yet
                    alias = f"__{layer}__{name}"
                    con.register(alias, src)
                    self._arrow.append(src)
                    con.execute(f'CREATE VIEW "{layer}"."{name}" AS SELECT * FROM "{alias}"')
                comment_views(con, layer, name, self.describe)
        if local:
            dirs = [f"{self.lake.root}/{layer}/" for layer in self.layers]
            con.execute(f"SET allowed_directories = [{', '.join(repr(d) for d in dirs)}]")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")

    def _check_refs(self, sql: str) -> None:
        """Refuse references to layers the role may not read, with a clear message."""
        try:
            trees = sqlglot.parse(sql, read="duckdb")
        except sqlglot.errors.ParseError:
            return  # DuckDB will report the syntax error with its position
        for tree in trees:
            if tree is None:
                continue
            for t in tree.find_all(exp.Table):
                layer = t.db
                if layer in ROLES["admin"] and layer not in self.layers:
                    allowed = "、".join(f"{lay}.*" for lay in self.layers)
                    raise AccessDenied(
                        f"角色 {self.role}（{ROLE_NAMES[self.role]}）无权读取 {layer}.{t.name}",
                        hint=f"该角色可查询：{allowed}；如确需访问，请联系数据管理员申请 --role steward 或 admin",
                    )
                if layer in self.layers and t.name not in self.tables[layer]:
                    known = self.tables[layer]
                    raise QueryError(
                        f"表 {layer}.{t.name} 不存在（或尚无数据）",
                        hint=did_you_mean(t.name, set(known)) or (f"{layer} 层现有：{', '.join(known)}" if known else "先运行 govlake run"),
                    )

    def query(self, sql: str) -> QueryResult:
        self._check_refs(sql)
        started = datetime.now(timezone.utc)
        status = "ok"
        try:
            table = self.con.execute(sql).to_arrow_table()
        except duckdb.PermissionException:
            status = "denied"
            raise AccessDenied(
                f"角色 {self.role}（{ROLE_NAMES[self.role]}）不能直接读取文件或附加数据库",
                hint="请通过 <层>.<表名> 查询已授权的表",
            ) from None
        except duckdb.Error as exc:
            status = "error"
            raise QueryError(f"查询失败：{str(exc).splitlines()[0]}", hint="用 SELECT * FROM information_schema.tables 查看可查询的表") from None
        finally:
            self._audit(sql, status, started)
        return QueryResult(table=table, role=self.role)

    def _audit(self, sql: str, status: str, started: datetime) -> None:
        masked = re.sub(r"\d{4,}", lambda m: "#" * len(m.group()), sql)
        row = pa.table({
            "at": pa.array([started], pa.timestamp("us", tz="UTC")),
            "user": [getpass.getuser()], "role": [self.role], "status": [status],
            "query_masked": [masked], "query_sha256": [hashlib.sha256(sql.encode()).hexdigest()],
        })
        try:
            self.lake.append("meta", AUDIT, row)
        except Exception:  # auditing must not hide the query's own outcome
            pass

    def close(self) -> None:
        self.con.close()


def export_duckdb(lake: Lake, path: str, role: str = "analyst", describe: Describe | None = None) -> dict[str, int]:
    """A DuckDB database file of views over the role's tables, for the DuckDB CLI or any SQL client.

    The views read the Parquet files of each table's current Delta snapshot, so the file is a consistent
    point-in-time copy of the catalogue (re-export after new runs); no data is copied into it, and it carries
    the table and column descriptions.
    """
    import os

    if role not in ROLES:
        raise AccessDenied(f"未知角色：{role}", hint=f"可选角色：{', '.join(ROLES)}")
    if not lake.settings.is_local:
        raise QueryError("对象存储上的数据湖暂不支持导出 DuckDB 文件", hint="在本地数据湖上导出，或直接使用 govlake sql")
    if os.path.exists(path):
        os.remove(path)  # a fresh file: views of a previous snapshot must not linger
    con = duckdb.connect(path)
    counts: dict[str, int] = {}
    try:
        for layer in ROLES[role]:
            con.execute(f'CREATE SCHEMA IF NOT EXISTS "{layer}"')
            counts[layer] = 0
            for name in lake.list_tables(layer):
                files = lake.table(layer, name).file_uris()
                if not files:
                    continue
                flist = ", ".join(_quote(f) for f in files)
                con.execute(f'CREATE VIEW "{layer}"."{name}" AS SELECT * FROM read_parquet([{flist}], union_by_name = true)')
                comment_views(con, layer, name, describe)
                counts[layer] += 1
    finally:
        con.close()
    return counts
