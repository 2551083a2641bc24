"""The embedded engine: DuckDB for compute over Delta tables read through delta-rs' snapshots.

Capabilities: parallel whole-table writes (DuckDB's COPY); MERGE of staged rows is a copy-on-write of only
the files holding a matched key (:meth:`DuckDBEngine.merge_staged`); overwrite-where is left to delta-rs;
object-store tables are scanned as delta-rs Arrow datasets (no httpfs offline).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Sequence
from urllib.parse import unquote

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from govlake.engine.base import Dialect, Engine, Staged, data_file_name, ident, sql_str
from govlake.lake import ROW_GROUP_ROWS, DataFile, Lake, write_data_file
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

    def merge_staged(self, staged: Staged, keys: Sequence[str], *, update_if: str | None, commit: object) -> None:
        """Upsert the staged rows by ``keys`` as a copy-on-write of the files that hold a matched key, the rest
        of the table untouched: the cost follows the delivery, not the table (delta-rs' MERGE joins and
        rewrites across the whole target: at 1M silver rows a 1 % delivery cost 2-3x what it cost on an empty
        table). Same result as ``when_matched_update_all(update_if).when_not_matched_insert_all()``: a staged
        row replaces the target row of its key where ``update_if`` holds (over ``s`` and ``t``), else it is
        dropped; new keys are inserted. One Delta transaction: the touched files removed, their kept rows and
        the staged rows added. Appends (no key matched) move the staged files in as they are.

        Schema changes and object stores keep delta-rs' MERGE (it evolves the schema)."""
        dt = self.lake.table(staged.layer, staged.table)
        if dt is None or not staged.files or not self.writes_files() or \
                pa.schema(dt.schema().to_arrow()).names != staged.schema.names:
            return super().merge_staged(staged, keys, update_if=update_if, commit=commit)
        root = self.lake.uri(staged.layer, staged.table)
        local_root = unquote(root.removeprefix("file://"))
        log_paths = [a["path"] for a in pa.table(dt.get_add_actions(flatten=True)).select(["path"]).to_pylist()]
        by_file = {os.path.realpath(os.path.join(local_root, unquote(p))): p for p in log_paths}
        src = ", ".join(sql_str(p) for p in staged.paths())
        on = " AND ".join(f"t.{ident(k)} = s.{ident(k)}" for k in keys)
        fs = pafs.LocalFileSystem()
        try:
            self.con.execute(f"CREATE OR REPLACE TEMP VIEW __merge_s AS SELECT * FROM read_parquet([{src}])")
            matched = self.fetch(
                f"SELECT t.filename AS file, {', '.join(f's.{ident(k)}' for k in keys)}, "
                f"coalesce({update_if or 'TRUE'}, FALSE) AS s_wins FROM read_parquet("
                f"[{', '.join(sql_str(f) for f in by_file)}], filename = true) t JOIN __merge_s s ON {on}"
            ) if by_file else None
            if matched is None or not matched.num_rows:
                adds = self._move_staged(staged, local_root)
                self.lake.commit_data_files(staged.layer, staged.table, adds, staged.schema, commit=commit)
                return
            self.register_arrow("__merge_m", matched)
            # the files were read by the paths of ``by_file``: DuckDB reports them as given, once per file
            touched = sorted(pc.unique(matched.column("file")).to_pylist())
            adds = self._rewrite_without(staged, local_root, touched, keys)
            # the staged rows without those that lost to a newer target row
            if not pc.all(matched.column("s_wins")).as_py():
                rows = self.fetch(f"SELECT * FROM __merge_s s WHERE NOT EXISTS (SELECT 1 FROM __merge_m m WHERE NOT "
                                  f"m.s_wins AND {' AND '.join(f's.{ident(k)} = m.{ident(k)}' for k in keys)})")
                written = write_data_file(fs, local_root, data_file_name(), rows.to_batches(), staged.schema,
                                          staged.private)
                adds += [written] if written else []
            else:
                adds += self._move_staged(staged, local_root)
            self.lake.commit_data_files(staged.layer, staged.table, adds, staged.schema,
                                        remove=[by_file[p] for p in touched], commit=commit)
        finally:
            self.drop("__merge_m")
            self.con.execute("DROP VIEW IF EXISTS __merge_s")

    def _rewrite_without(self, staged: Staged, table_root: str, touched: list[str], keys: Sequence[str]) -> list[DataFile]:
        """The touched files' rows that no staged row replaces, written as new files of the table. A flat
        table without private columns (gold) is written by DuckDB's parallel COPY; otherwise the lake's writer
        writes them (no statistics for private columns, the lake's list layout), a file at a time."""
        drop = " AND ".join(f"t.{ident(k)} = m.{ident(k)}" for k in keys)
        columns = ", ".join(ident(n) for n in staged.schema.names)

        def kept(paths: list[str]) -> str:
            files = ", ".join(sql_str(p) for p in paths)
            return (f"SELECT {columns} FROM read_parquet([{files}], filename = true) t WHERE NOT EXISTS (SELECT 1 FROM "
                    f"__merge_m m WHERE m.s_wins AND m.file = t.filename AND {drop})")

        flat = not any(pa.types.is_nested(f.type) for f in staged.schema)
        if flat and not staged.private:
            part = f"part-{uuid.uuid4().hex}"
            os.makedirs(f"{table_root}/{part}")
            self.con.execute(f"COPY ({kept(touched)}) TO {sql_str(table_root + '/' + part)} "
                             f"(FORMAT parquet, PER_THREAD_OUTPUT true, COMPRESSION snappy, ROW_GROUP_SIZE {ROW_GROUP_ROWS})")
            rels = sorted(f"{part}/{f}" for f in os.listdir(f"{table_root}/{part}") if f.endswith(".parquet"))
            if not rels:
                os.rmdir(f"{table_root}/{part}")
                return []
            return self.lake.data_files(staged.layer, staged.table, rels)[0]
        fs = pafs.LocalFileSystem()
        out: list[DataFile] = []
        for path in touched:
            rows = self.fetch(kept([path]))
            written = write_data_file(fs, table_root, data_file_name(), rows.to_batches(), staged.schema,
                                      staged.private) if rows.num_rows else None
            out += [written] if written else []
        return out

    @staticmethod
    def _move_staged(staged: Staged, table_root: str) -> list[DataFile]:
        """Staged files (written with the lake's layout) moved into the table directory as they are."""
        moved = []
        for f in staged.files:
            shutil.move(f"{staged.root}/{f.path}", f"{table_root}/{f.path}")
            moved.append(f)
        staged.files = []
        return moved

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
