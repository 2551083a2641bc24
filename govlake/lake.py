"""The lake: where each layer's Delta tables live and the few Delta operations jobs need.

All writes are Delta transactions through delta-rs; a job that fails leaves no partial commit.
Table addresses are ``<root>/<layer>/<name>`` for local paths and s3:// URIs alike.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from deltalake import ColumnProperties, CommitProperties, DeltaTable, Transaction, WriterProperties, write_deltalake
from deltalake.exceptions import TableNotFoundError

from govlake.errors import RegistryError, did_you_mean
from govlake.project import Settings

if TYPE_CHECKING:  # imported where used: a ``govlake run`` with nothing to do reads the lake through delta-rs
    import pyarrow as pa  # (Lake.rows) and never loads pyarrow and NumPy, let alone pandas (pyarrow.dataset)
    import pyarrow.dataset as pads
    import pyarrow.fs as pafs

LAYERS = ("bronze", "silver", "quarantine", "gold", "meta")

log = logging.getLogger(__name__)

# Appends to these layers come in small pieces, a row or a few per event (a delivered file, a conformed batch,
# a build, a run's quality scores), and each is one Parquet file. Once a table holds COMPACT_AT files they are
# rewritten as one and the log is checkpointed: otherwise every read of it, above all the "nothing to do"
# checks of every ``govlake run``, opens one file per event ever recorded (a 190-file ``meta.ingest_batches``
# after one demo: 0.1 s of CPU to read 188 rows, against 5 ms compacted, and growing with every delivery).
COMPACT_LAYERS = ("meta", "gold")  # gold: ``gold.quality_scores`` is appended per run; models are overwritten
COMPACT_AT = 32

# Parquet row groups are the unit of parallel scans and of row-range pruning. delta-rs' default (1M rows)
# let one thread read a whole 500k-row conform slice: at 10 million rows a slice took 2.8 s instead of 2.2.
ROW_GROUP_ROWS = 122_880  # DuckDB's own row group size


def writer_properties(private: Iterable[str] = ()) -> WriterProperties:
    """``private``: columns holding personal values; no statistics are written for them, so their values
    appear neither in Parquet footers (min/max) nor in the Delta log's ``stats``."""
    cols = {c: ColumnProperties(statistics_enabled="NONE") for c in private}
    return WriterProperties(max_row_group_size=ROW_GROUP_ROWS, column_properties=cols or None)


@dataclass(frozen=True)
class DataFile:
    """A Parquet file an engine wrote for a table and that no Delta version references yet: what its add
    action needs. ``path`` is relative to the table root, as in the Delta log."""

    path: str
    size: int
    rows: int
    stats: str  # Delta file statistics (JSON)
    mtime: int  # milliseconds since the epoch


class FileStats:
    """Delta file statistics of one Parquet file, accumulated batch by batch: row and null counts only
    (min/max stay in the Parquet footers, so no reader skips a file on a wrong bound)."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.rows = 0
        self.nulls: dict[str, int] = {}

    def update(self, batch: pa.RecordBatch) -> None:
        import pyarrow as pa

        self.rows += batch.num_rows
        for f, col in zip(self.schema, batch.columns):
            if not pa.types.is_nested(f.type):
                self.nulls[f.name] = self.nulls.get(f.name, 0) + col.null_count

    def json(self) -> str:
        return json.dumps({"numRecords": self.rows, "nullCount": self.nulls})


def cast_batch(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """``batch`` with the types of ``schema`` (same columns, same order)."""
    import pyarrow as pa

    if batch.schema.equals(schema):
        return batch
    cols = [batch.column(i).cast(f.type) for i, f in enumerate(schema)]
    return pa.RecordBatch.from_arrays(cols, schema=schema)


def delta_types(schema: pa.Schema) -> pa.Schema:
    """``schema`` with the types Delta stores: a zoned timestamp is UTC-adjusted whatever the zone's name
    (DuckDB hands out ``Etc/UTC``, which delta-rs' schema conversion refuses)."""
    import pyarrow as pa

    def fix(f: pa.Field) -> pa.Field:
        t = f.type
        if pa.types.is_timestamp(t) and t.tz is not None and t.tz != "UTC":
            return f.with_type(pa.timestamp(t.unit, tz="UTC"))
        return f
    return pa.schema([fix(f) for f in schema], metadata=schema.metadata)


def _nullable_type(t: pa.DataType) -> pa.DataType:
    import pyarrow as pa

    if pa.types.is_large_string(t):
        return pa.string()
    if pa.types.is_large_binary(t):
        return pa.binary()
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return pa.list_(pa.field("element", _nullable_type(t.value_type), True))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _nullable_type(f.type), True) for f in t])
    if pa.types.is_map(t):
        return pa.map_(_nullable_type(t.key_type), _nullable_type(t.item_type))
    return t


def relax(schema: pa.Schema) -> pa.Schema:
    """Every field nullable and plain (not large) types: what Delta stores, whichever engine computed the
    rows. Nullability is never declared by a writer: Spark's schemas say NOT NULL where its plan proves it,
    and DuckDB 2's Parquet writer marks a column REQUIRED when the statistics of that file's rows hold no
    NULL (data-dependent, and it can differ between the files of one write)."""
    import pyarrow as pa

    return pa.schema([pa.field(f.name, _nullable_type(f.type), True) for f in schema])


def write_data_file(fs: "pafs.FileSystem", root: str, rel: str, batches: Iterable[pa.RecordBatch], schema: pa.Schema,
                    private: Iterable[str] = ()) -> DataFile | None:
    """Write ``batches`` as the Parquet file ``root/rel`` with the lake's layout, the one delta-rs gets from
    :func:`writer_properties`: row groups of ``ROW_GROUP_ROWS``, snappy, no statistics for ``private``
    columns. Runs wherever the rows are (this process, a Spark executor); returns None, leaving no file,
    when no row came. Small incoming batches are gathered into full row groups."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    hidden = set(private)
    stats_cols = [f.name for f in schema if f.name not in hidden]
    path = f"{root}/{rel}" if root else rel
    stats = FileStats(schema)
    writer: pq.ParquetWriter | None = None
    pending: list[pa.RecordBatch] = []

    def flush(final: bool) -> None:
        nonlocal writer, pending
        table = pa.Table.from_batches(pending, schema=schema)
        cut = table.num_rows if final else table.num_rows - table.num_rows % ROW_GROUP_ROWS
        if writer is None:
            writer = pq.ParquetWriter(path, schema, filesystem=fs, compression="snappy",
                                      write_statistics=stats_cols or False)
        writer.write_table(table.slice(0, cut), row_group_size=ROW_GROUP_ROWS)
        pending = table.slice(cut).to_batches()

    try:
        for b in batches:
            if not b.num_rows:
                continue
            b = cast_batch(b, schema)
            stats.update(b)
            pending.append(b)
            if sum(p.num_rows for p in pending) >= ROW_GROUP_ROWS:
                flush(final=False)
        if any(p.num_rows for p in pending):
            flush(final=True)
    except BaseException:
        if writer is not None:
            writer.close()
            fs.delete_file(path)
        raise
    if writer is None:
        return None
    writer.close()
    info = fs.get_file_info(path)
    mtime = info.mtime.timestamp() if info.mtime is not None else time.time()
    return DataFile(rel, info.size, stats.rows, stats.json(), int(mtime * 1000))


def refuse_conflicts(write: Any) -> Any:
    """A concurrent commit to the same table (a writer that bypassed the lake's writer lock) ends the job
    with a message instead of a delta-rs trace; the commit was not made, the table is as it was."""
    import functools

    from deltalake.exceptions import CommitFailedError

    @functools.wraps(write)
    def wrapper(self: "Lake", layer: str, name: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return write(self, layer, name, *args, **kwargs)
        except CommitFailedError as exc:
            from govlake.errors import PipelineError

            raise PipelineError(
                f"另一个写入者同时提交了 {layer}.{name}，本次提交已放弃，该表保持在上一次成功提交的状态",
                where=self.uri(layer, name),
                hint="确认没有绕过 govlake 写入锁的写入者（旧版本 govlake、手工脚本）同时写入该湖，然后重试",
            ) from exc

    return wrapper


@dataclass(frozen=True)
class TableRef:
    layer: str
    name: str

    @property
    def qualified(self) -> str:
        return f"{self.layer}.{self.name}"


class Lake:
    """Addresses and transactional writes for the lake's Delta tables."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.lake_root.rstrip("/")
        self.storage_options = dict(settings.storage_options) or None
        self._handles: dict[str, DeltaTable] = {}
        self._reachable = self.settings.is_local  # object stores are probed once, before delta-rs meets them

    def check_reachable(self) -> None:
        """Fail fast, in words, when an object-store lake cannot be used (wrong endpoint or port, bad
        credentials, missing bucket): delta-rs would retry for minutes and end in a stack trace."""
        if self._reachable:
            return
        from govlake.locking import probe_object_store

        probe_object_store(self.root, self.settings.storage_options)
        self._reachable = True

    @property
    def local(self) -> bool:
        """A lake on the local filesystem: engines may write data files into its table directories and
        read them with their own Parquet readers. Object-store tables are written by delta-rs and read
        through its Arrow datasets (no engine here has offline S3 support: no httpfs, no hadoop-aws)."""
        return self.settings.is_local

    # -- addressing -----------------------------------------------------------------------
    def uri(self, layer: str, name: str) -> str:
        if layer not in LAYERS:
            raise RegistryError(f"未知数据层：{layer}", hint=did_you_mean(layer, set(LAYERS)))
        return f"{self.root}/{layer}/{name}"

    def exists(self, layer: str, name: str) -> bool:
        uri = self.uri(layer, name)
        self.check_reachable()
        return uri in self._handles or DeltaTable.is_deltatable(uri, storage_options=self.storage_options)

    def table(self, layer: str, name: str, version: int | None = None) -> DeltaTable | None:
        """The table at its latest version (or ``version``); None if it does not exist.

        Handles are cached and brought up to date incrementally: opening a table replays its log, and a
        job touching a table once per delivered file would otherwise pay that again and again.
        """
        uri = self.uri(layer, name)
        self.check_reachable()
        if version is not None:
            try:
                return DeltaTable(uri, version=version, storage_options=self.storage_options)
            except TableNotFoundError:
                return None
        dt = self._handles.get(uri)
        if dt is not None:
            dt.update_incremental()
            return dt
        try:
            dt = DeltaTable(uri, storage_options=self.storage_options)
        except TableNotFoundError:
            return None
        self._handles[uri] = dt
        return dt

    def dataset(self, dt: DeltaTable) -> "pads.Dataset":
        """A pyarrow dataset over the table's current files, read through a native (C++) filesystem.

        delta-rs' default wraps its object store in a Python ``PyFileSystem``. A scan's last callbacks run on
        pyarrow's worker threads and drop that filesystem there; when this happens while the interpreter is
        exiting, the destructor's GIL request kills the thread inside a ``noexcept`` frame and the process
        aborts (SIGABRT, "terminate called without an active exception") after a command had already printed
        its result. pyarrow's own local and S3 filesystems hold no Python objects, so no such race exists.
        """
        return dt.to_pyarrow_dataset(filesystem=self._native_fs(dt.table_uri))

    def scan_source(self, dt: DeltaTable, columns: Any = None, filter: Any = None) -> Any:
        """What DuckDB should scan for the snapshot (``con.register``): its pyarrow dataset, with filter and
        projection pushdown, unless a file of it was written with view types.

        ``columns`` (names, or name -> pyarrow expression for computed columns) and ``filter`` (a
        pyarrow.dataset expression) restrict what the source can ever yield, whatever DuckDB asks of it: the
        access policy's projection and row scope (govlake.control.policy). Names with a filter on visible
        columns stay a dataset (``Dataset.filter`` + ``replace_schema``: DuckDB still pushes its own filters
        and projections into the Parquet scan); a filter on a column that is not projected, or computed
        columns, need a ``Scanner``, which DuckDB re-reads as a stream per query and filters itself.

        delta-rs writes some files (merges, predicate overwrites) with ``string_view`` columns and others
        with ``string``. DuckDB pushes its filters into a pyarrow scan as ``string`` literals, and pyarrow
        then compares them with the view-typed columns of such a file and fails (``Function 'greater_equal'
        has no kernel matching input types (string, string_view)``: scoring on S3 lakes died on it). No
        dataset schema avoids this (declared ``string_view``, the literals of DuckDB's join filters fail
        instead), so such snapshots are scanned as a stream of batches cast to the table's plain types,
        which DuckDB filters itself. Local lakes' engine views read the Parquet files with DuckDB's own
        reader and never get here."""
        import pyarrow as pa
        import pyarrow.dataset as pads

        ds = self.dataset(dt)
        if any(_has_view_types(frag) for frag in ds.get_fragments()):
            return PlainTypedSource(ds, columns, filter)
        if columns is None and filter is None:
            return ds
        if isinstance(columns, Mapping):
            return pads.Scanner.from_dataset(ds, columns=dict(columns), filter=filter)
        out = ds.filter(filter) if filter is not None else ds
        if columns is not None:
            out = out.replace_schema(pa.schema([ds.schema.field(c) for c in columns]))
        try:
            out.scanner()  # binds the filter against the projected schema
        except pa.ArrowInvalid:  # the filter's column is not projected: filter below the projection
            return pads.Scanner.from_dataset(ds, columns=list(columns), filter=filter)
        return out

    def data_files_target(self, layer: str, name: str) -> tuple["pafs.FileSystem", str]:
        """Where an engine writes a local table's data files: a filesystem and the table directory in it."""
        assert self.local, "engine-written data files go to local lakes only (object stores: delta-rs writes)"
        import pyarrow.fs as pafs

        root = os.path.abspath(self.uri(layer, name))
        os.makedirs(root, exist_ok=True)
        return pafs.LocalFileSystem(), root

    def _native_fs(self, table_uri: str) -> "pafs.FileSystem":
        import pyarrow.fs as pafs

        if self.settings.is_local:
            path = table_uri.removeprefix("file://")
            return pafs.SubTreeFileSystem(path, pafs.LocalFileSystem())
        opts = self.settings.storage_options
        endpoint = opts.get("AWS_ENDPOINT_URL", "")
        scheme, _, host = endpoint.partition("://") if endpoint else ("https", "", "")
        s3 = pafs.S3FileSystem(
            access_key=opts.get("AWS_ACCESS_KEY_ID"), secret_key=opts.get("AWS_SECRET_ACCESS_KEY"),
            region=opts.get("AWS_REGION", "us-east-1"), endpoint_override=host or None, scheme=scheme or "https",
        )
        return pafs.SubTreeFileSystem(table_uri.split("://", 1)[1].rstrip("/"), s3)

    def commit_metadata(self, layer: str, name: str, **match: Any) -> tuple[int, dict[str, Any]] | None:
        """The newest commit whose govlake metadata contains ``match`` (e.g. ``batch_id=…``), as
        ``(version, metadata)``: what a job recorded at commit time, read back from the Delta log, so a
        crash after the commit loses nothing that went into it."""
        dt = self.table(layer, name)
        if dt is None:
            return None
        for entry in dt.history():
            try:
                meta = json.loads(entry.get("govlake") or "{}")
            except (TypeError, ValueError):
                continue
            if all(meta.get(k) == v for k, v in match.items()):
                return int(entry["version"]), meta
        return None

    def writer_lock(self, job: str, timeout: float | None = None):
        """The lake's writer lock (see :mod:`govlake.locking`), held by every job that writes."""
        from govlake.locking import writer_lock

        self.check_reachable()
        return writer_lock(self, job, timeout=timeout)

    def arrow_schema(self, layer: str, name: str) -> pa.Schema | None:
        """The table's current schema as a pyarrow schema (delta-rs hands out arro3 types)."""
        import pyarrow as pa

        dt = self.table(layer, name)
        return None if dt is None else pa.schema(dt.schema().to_arrow())

    def list_tables(self, layer: str) -> list[str]:
        """Names of the Delta tables present in a layer (local lakes list the directory, S3 lists prefixes)."""
        if self.settings.is_local:
            from pathlib import Path

            base = Path(self.root) / layer
            if not base.is_dir():
                return []
            return sorted(p.name for p in base.iterdir() if (p / "_delta_log").is_dir())
        import boto3

        self.check_reachable()
        bucket, _, prefix = self.root.split("://", 1)[1].partition("/")
        endpoint = self.settings.storage_options.get("AWS_ENDPOINT_URL")
        s3 = boto3.client("s3", endpoint_url=endpoint)
        base = f"{prefix}/{layer}/".lstrip("/")
        resp = s3.list_objects_v2(Bucket=bucket, Prefix=base, Delimiter="/")
        names = [p["Prefix"][len(base):].rstrip("/") for p in resp.get("CommonPrefixes", [])]
        return sorted(n for n in names if self.exists(layer, n))

    # -- reads ------------------------------------------------------------------------------
    def read(self, layer: str, name: str, columns: list[str] | None = None, filter_sql: str | None = None) -> pa.Table:
        """Read a whole (small) table into Arrow; returns an empty table if it does not exist."""
        import pyarrow as pa

        dt = self.table(layer, name)
        if dt is None:
            return pa.table({})
        if filter_sql:
            import duckdb

            con = duckdb.connect()
            con.register("t", self.scan_source(dt))
            cols = ", ".join(f'"{c}"' for c in columns) if columns else "*"
            out = con.sql(f"SELECT {cols} FROM t WHERE {filter_sql}").to_arrow_table()
            con.close()
            return out
        return self.dataset(dt).to_table(columns=columns)

    def rows(self, layer: str, name: str, columns: Sequence[str], where: str | None = None, *,
             distinct: bool = False) -> list[dict[str, Any]]:
        """Rows of a small table (the ``meta.*`` bookkeeping, a governance table) as Python dicts, ``where``
        a SQL condition on its columns; none if the table does not exist. What the "nothing to do" checks of
        ``govlake run`` read.

        The snapshot is scanned by delta-rs' own SQL engine (DataFusion, the one its merges use): no pyarrow
        dataset is built (one statistics expression per file and column, 0.2 s for the 200-file log of
        ``meta.ingest_batches`` on a loaded machine), no DuckDB is started, and pyarrow is never imported."""
        dt = self.table(layer, name)
        if dt is None:
            return []
        from deltalake import QueryBuilder

        cols = ", ".join(f'"{c}"' for c in columns)
        sql = f"SELECT {'DISTINCT ' if distinct else ''}{cols} FROM t" + (f" WHERE {where}" if where else "")
        data = QueryBuilder().register("t", dt).execute(sql).read_all()
        values = [data.column(c).to_pylist() for c in columns]
        return [dict(zip(columns, r)) for r in zip(*values)]

    # -- writes -----------------------------------------------------------------------------
    @staticmethod
    def commit(app_id: str | None = None, version: int = 1, **metadata: Any) -> CommitProperties:
        """Commit properties with our metadata and, for exactly-once jobs, an app-level transaction id."""
        meta = {"govlake": json.dumps(metadata, ensure_ascii=False, default=str)} if metadata else None
        txns = [Transaction(app_id=app_id, version=version)] if app_id else None
        return CommitProperties(custom_metadata=meta, app_transactions=txns)

    def txn_version(self, layer: str, name: str, app_id: str) -> int | None:
        dt = self.table(layer, name)
        return None if dt is None else dt.transaction_version(app_id)

    def _target(self, layer: str, name: str) -> DeltaTable | str:
        """Write through the cached handle when there is one (no re-open), else by URI."""
        uri = self.uri(layer, name)
        self.check_reachable()
        return self._handles.get(uri) or uri

    @refuse_conflicts
    def append(self, layer: str, name: str, data: Any, *, schema_mode: str | None = "merge",
               commit: CommitProperties | None = None, description: str | None = None) -> None:
        write_deltalake(
            self._target(layer, name), data, mode="append", schema_mode=schema_mode,
            storage_options=self.storage_options, commit_properties=commit, description=description,
            writer_properties=writer_properties(),
        )
        if layer in COMPACT_LAYERS:
            self._keep_compact(layer, name)

    def _keep_compact(self, layer: str, name: str) -> None:
        """Compact a table appended to in small pieces once it holds ``COMPACT_AT`` files (see there): one
        OPTIMIZE commit (same rows, earlier versions kept for time travel) and a checkpoint, by the writer
        that holds the lake's lock. Best effort: if it cannot be done now, the next append tries again."""
        from deltalake.exceptions import DeltaError

        dt = self.table(layer, name)
        if dt is None or len(dt.file_uris()) < COMPACT_AT:
            return
        try:
            dt.optimize.compact(writer_properties=writer_properties())
            dt.create_checkpoint()
        except DeltaError as exc:
            log.warning("could not compact %s.%s now: %s", layer, name, exc)

    @refuse_conflicts
    def overwrite(self, layer: str, name: str, data: Any, *, predicate: str | None = None,
                  commit: CommitProperties | None = None, description: str | None = None,
                  private: Iterable[str] = ()) -> None:
        """Replace the table, or only the rows matching ``predicate``, in one transaction."""
        exists = self.exists(layer, name)
        write_deltalake(
            self._target(layer, name), data, mode="overwrite",
            predicate=predicate if exists else None,
            schema_mode=None if (predicate and exists) else "overwrite",
            storage_options=self.storage_options, commit_properties=commit, description=description,
            writer_properties=writer_properties(private),
        )

    @refuse_conflicts
    def commit_files(self, layer: str, name: str, rel_paths: list[str], *, mode: str = "append",
                     commit: CommitProperties | None = None, description: str | None = None) -> None:
        """Commit Parquet files already written inside the table directory (by an engine's parallel writers)
        as one Delta transaction. ``mode="overwrite"`` replaces every current file atomically."""
        files, schema = self.data_files(layer, name, rel_paths)
        self.commit_data_files(layer, name, files, schema, mode=mode, commit=commit, description=description)

    def data_files(self, layer: str, name: str, rel_paths: list[str]) -> tuple[list[DataFile], pa.Schema]:
        """Parquet files written inside the table directory, described for their add actions: statistics
        from the footers (row and null counts, as :class:`FileStats`), the schema from the first footer,
        relaxed (:func:`relax`): a footer's REQUIRED column says only that this file holds no NULL."""
        import pyarrow.parquet as pq

        root = self.uri(layer, name)
        files: list[DataFile] = []
        schema: pa.Schema | None = None
        for rel in rel_paths:
            full = f"{root}/{rel}"
            meta = pq.read_metadata(full)
            schema = schema or meta.schema.to_arrow_schema()
            nulls: dict[str, int] = {}
            for rg in range(meta.num_row_groups):
                group = meta.row_group(rg)
                for c in range(group.num_columns):
                    col = group.column(c)
                    if "." in col.path_in_schema or col.statistics is None or not col.statistics.has_null_count:
                        continue
                    nulls[col.path_in_schema] = nulls.get(col.path_in_schema, 0) + col.statistics.null_count
            st = os.stat(full)
            stats = json.dumps({"numRecords": meta.num_rows, "nullCount": nulls})
            files.append(DataFile(rel, st.st_size, meta.num_rows, stats, int(st.st_mtime * 1000)))
        assert schema is not None, "commit_files needs at least one file"
        return files, relax(schema)

    @refuse_conflicts
    def commit_data_files(self, layer: str, name: str, files: Sequence[DataFile], schema: pa.Schema, *,
                          mode: str = "append", remove: Sequence[str] = (), commit: CommitProperties | None = None,
                          description: str | None = None) -> None:
        """Commit data files an engine wrote inside the table directory as one Delta transaction, dropping
        the current files ``remove`` (paths as in the log: a copy-on-write rewrite) in the same commit.
        The only place where Delta actions are built by hand: engines hand over files, never actions."""
        import pyarrow as pa
        from deltalake import Schema
        from deltalake.transaction import AddAction, RemoveAction, create_table_with_add_actions

        adds = [AddAction(f.path, f.size, {}, f.mtime, True, f.stats) for f in files]
        dt = self.table(layer, name)
        if dt is None:
            create_table_with_add_actions(self.uri(layer, name), Schema.from_arrow(schema), adds, mode="error",
                                          description=description, storage_options=self.storage_options,
                                          commit_properties=commit)
            return
        removes: list[RemoveAction] = []
        if remove:
            sizes = {a["path"]: a["size_bytes"] for a in
                     pa.table(dt.get_add_actions(flatten=True)).select(["path", "size_bytes"]).to_pylist()}
            now = int(time.time() * 1000)
            removes = [RemoveAction(p, True, now, sizes.get(p), {}) for p in remove]
        dt.create_write_transaction([*removes, *adds], mode=mode, schema=Schema.from_arrow(schema),
                                    commit_properties=commit)
        dt.update_incremental()  # the cached handle must see its own commit before the next write

    @refuse_conflicts
    def merge(self, layer: str, name: str, source: Any, keys: Iterable[str], *, update_if: str | None = None,
              commit: CommitProperties | None = None, private: Iterable[str] = ()) -> dict[str, Any]:
        """Upsert ``source`` by ``keys``: matched rows are replaced (if ``update_if`` holds), others inserted."""
        dt = self.table(layer, name)
        assert dt is not None
        on = " AND ".join(f't."{k}" = s."{k}"' for k in keys)
        return (
            dt.merge(source, predicate=on, source_alias="s", target_alias="t", commit_properties=commit,
                     merge_schema=True, writer_properties=writer_properties(private))
            .when_matched_update_all(predicate=update_if)
            .when_not_matched_insert_all()
            .execute()
        )

    @refuse_conflicts
    def update_matched(self, layer: str, name: str, source: Any, keys: Iterable[str], assignments: dict[str, str], *,
                       commit: CommitProperties | None = None, private: Iterable[str] = ()) -> dict[str, Any]:
        """Set columns of the rows that match ``source`` on ``keys``; ``assignments``: column -> SQL over the
        target ``t`` and the source ``s``. Unmatched source rows are ignored."""
        dt = self.table(layer, name)
        assert dt is not None
        on = " AND ".join(f't."{k}" = s."{k}"' for k in keys)
        return (
            dt.merge(source, predicate=on, source_alias="s", target_alias="t", commit_properties=commit,
                     writer_properties=writer_properties(private))
            .when_matched_update(assignments)
            .execute()
        )

    @refuse_conflicts
    def delete(self, layer: str, name: str, predicate: str, *, commit: CommitProperties | None = None) -> None:
        """Delete the rows matching ``predicate`` in one transaction; nothing when the table does not exist."""
        dt = self.table(layer, name)
        if dt is not None:
            dt.delete(predicate, writer_properties=writer_properties(), commit_properties=commit)


_VIEW_TYPED: dict[str, bool] = {}  # file path -> written with view types (Delta data files never change)


def _has_view_types(fragment: Any) -> bool:
    path = fragment.path
    if path not in _VIEW_TYPED:
        _VIEW_TYPED[path] = any("view" in str(f.type) for f in fragment.physical_schema)
    return _VIEW_TYPED[path]


class PlainTypedSource:
    """An Arrow stream source (PyCapsule interface) over a dataset, whose every scan yields batches cast
    to the dataset's plain types: DuckDB rescans it per query and applies its filters itself."""

    def __init__(self, dataset: "pads.Dataset", columns: Any = None, filter: Any = None) -> None:
        import pyarrow as pa

        self.dataset = dataset
        self.columns = dict(columns) if isinstance(columns, Mapping) else (list(columns) if columns is not None else None)
        self.filter = filter
        if self.columns is None:
            self.schema = dataset.schema
        else:  # the projection in the dataset's plain types (computed columns as the scanner types them)
            projected = dataset.scanner(columns=self.columns, filter=filter).projected_schema
            plain = {f.name: f for f in dataset.schema}
            self.schema = pa.schema([plain.get(f.name, f) for f in projected])

    def _batches(self) -> Iterable[pa.RecordBatch]:
        for b in self.dataset.to_batches(columns=self.columns, filter=self.filter):
            yield b if b.schema.equals(self.schema) else b.cast(self.schema)

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        import pyarrow as pa

        return pa.RecordBatchReader.from_batches(self.schema, self._batches()).__arrow_c_stream__(requested_schema)

    def to_table(self, columns: list[str] | None = None, filter: Any = None) -> pa.Table:
        both = self.filter if filter is None else (filter if self.filter is None else self.filter & filter)
        return self.dataset.to_table(columns=columns if columns is not None else self.columns, filter=both)


def empty_like(schema: pa.Schema) -> pa.Table:
    import pyarrow as pa

    return pa.Table.from_batches([], schema=schema)
