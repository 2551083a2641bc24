"""The embedded engine: DuckDB for compute over Delta tables read through delta-rs' snapshots.

Capabilities: parallel whole-table writes (DuckDB's COPY); overwrite-where and MERGE are left to delta-rs;
object-store tables are scanned as delta-rs Arrow datasets (no httpfs offline).
"""

from __future__ import annotations

import os
import tempfile
import uuid

import duckdb
import pyarrow as pa

from govlake.engine.base import Dialect, Engine, ident, sql_str
from govlake.lake import ROW_GROUP_ROWS, Lake
from govlake.project import Settings


class DuckDBEngine(Engine):
    name = "duckdb"
    PARALLEL_WRITES = True

    def __init__(self, settings: Settings, lake: Lake | None = None) -> None:
        super().__init__(lake or Lake(settings))
        self.dialect = Dialect()
        self._tmp = tempfile.TemporaryDirectory(prefix="govlake-duckdb-")
        self.con = duckdb.connect(config={
            "threads": settings.duckdb_threads,
            "memory_limit": settings.duckdb_memory_limit,
            "temp_directory": self._tmp.name,
            "preserve_insertion_order": False,  # jobs order explicitly where it matters
        })
        self._arrow: dict[str, object] = {}

    def register_delta(self, view: str, layer: str, table: str, *, version: int | None = None) -> bool:
        dt = self.lake.table(layer, table, version=version)
        if dt is None:
            return False
        files = dt.file_uris()
        if self.reads_files() and files:
            # DuckDB's own Parquet reader is parallel and prunes row groups; delta-rs gives the snapshot's files.
            file_list = ", ".join(sql_str(f) for f in files)
            self.con.execute(
                f"CREATE OR REPLACE TEMP VIEW {ident(view)} AS "
                f"SELECT * FROM read_parquet([{file_list}], union_by_name = true)"
            )
        else:
            ds = self.lake.scan_source(dt)
            self._arrow[view] = ds
            self.con.register(view, ds)
        return True

    def register_arrow(self, view: str, data: pa.Table) -> None:
        self._arrow[view] = data
        self.con.register(view, data)

    def execute(self, sql: str) -> None:
        self.con.execute(sql)

    def stream(self, sql: str) -> pa.RecordBatchReader:
        # A relation's reader streams; since DuckDB 2 a DB-API result's (execute()) copies every row first.
        # While it is partly read the connection runs no other query (ResourceInUseException).
        return self.con.sql(sql).to_arrow_reader(1_000_000)

    def fetch(self, sql: str) -> pa.Table:
        # The relation API collects results in parallel (measured on DuckDB 1.5: 3.6 s vs 7.6 s for 2M
        # conformed rows through a streaming reader).
        return self.con.sql(sql).to_arrow_table()

    def write_files(self, layer: str, table: str, sql: str, *, mode: str, predicate: str | None, commit: object,
                    description: str | None) -> None:
        """Whole-table writes use DuckDB's parallel Parquet writer (COPY) straight into the table directory,
        then one delta-rs commit of those files; DuckDB's Arrow streaming would run the query on a single
        thread. Row groups of ``ROW_GROUP_ROWS``, as every other writer of the lake."""
        root = self.lake.uri(layer, table)
        part = f"part-{uuid.uuid4().hex}"
        os.makedirs(root, exist_ok=True)
        self.con.execute(f"COPY ({sql}) TO {sql_str(root + '/' + part)} "
                         f"(FORMAT parquet, PER_THREAD_OUTPUT true, COMPRESSION snappy, ROW_GROUP_SIZE {ROW_GROUP_ROWS})")
        files = sorted(f"{part}/{f}" for f in os.listdir(f"{root}/{part}") if f.endswith(".parquet"))
        if not files:  # an empty result writes no file: let the streaming path record the schema
            os.rmdir(f"{root}/{part}")
            return self.write_streamed(layer, table, sql, mode=mode, commit=commit, description=description)
        self.lake.commit_files(layer, table, files, mode=mode, commit=commit, description=description)

    def materialize(self, view: str, sql: str) -> None:
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {ident(view)} AS {sql}")

    def drop(self, view: str) -> None:
        if view in self._arrow:
            self.con.unregister(view)
            del self._arrow[view]
            return
        # fetchall: since DuckDB 2 a DB-API result holds the connection until it is read to the end
        kinds = self.con.execute(
            "SELECT table_type FROM information_schema.tables WHERE table_name = ? AND table_schema = 'main'", [view]
        ).fetchall()
        if kinds:
            self.con.execute(f"DROP {'VIEW' if kinds[0][0] == 'VIEW' else 'TABLE'} IF EXISTS {ident(view)}")

    def close(self) -> None:
        try:
            self.con.close()
        finally:
            self._tmp.cleanup()
