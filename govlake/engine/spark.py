"""The scale-out engine: Spark SQL over the lake's Delta snapshots, with Delta commits done by delta-rs.

No delta-spark (no JVM jars to download): Spark reads the exact Parquet files of a Delta snapshot (the
file list comes from delta-rs); for writes, executors write Parquet files in parallel straight into the
table directory (``mapInArrow`` + :func:`govlake.lake.write_data_file`) and the driver commits them as one
delta-rs transaction (``Lake.commit_data_files``, which also drops the files an overwrite-where or a MERGE
rewrote). So the lake is written by one Delta implementation whichever engine computes, and no row of a
write passes through the driver: staged writes run the job's split function on the executors too, and a
MERGE is a copy-on-write of the files holding matched keys, computed by Spark.

``SparkDialect`` spells the Dialect primitives so that results are identical to DuckDB's (the parity tests
in ``tests/engine`` hold the two engines to that): strptime and DATE casts accept exactly what DuckDB
accepts (a regex per format) before Spark's strict parser checks the values.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import unquote, urlparse

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from govlake.engine.base import Dialect, Engine, Split, Staged, data_file_name
from govlake.lake import DataFile, Lake, cast_batch, relax, write_data_file
from govlake.project import Settings


# -- SQL literals -------------------------------------------------------------------------------
def spark_str(value: str) -> str:
    """A Spark SQL string literal: Spark unescapes backslashes in literals, so they are doubled."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def spark_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


_WS = r"[ \t\n\x0B\f\r]"  # DuckDB's StringUtil::CharacterIsSpace
_REGEX_SPECIAL = set(".^$*+?()[]{}|\\-/&~#")
_WIDTH = {"Y": 4, "m": 2, "d": 2, "H": 2, "M": 2, "S": 2}
_YEAR_NOT_ZERO = "(?!(?:0000|000(?![0-9])|00(?![0-9])|0(?![0-9])))"  # Spark's parser throws on year 0


def _strptime_regex(fmt: str) -> tuple[str, str, str]:
    """For a strptime pattern: a Java regex accepting exactly what DuckDB's strptime accepts (up to value
    validity), the replacement that rewrites a match to canonical ``y-M-d H:m:s`` text, and that pattern.

    DuckDB skips leading/trailing whitespace, a space in the format matches one or more whitespace
    characters, and each numeric specifier reads greedily up to its width (1-4 digits for %Y, 1-2 for the
    others) without backtracking, hence the possessive quantifiers. Value validity (month 13, Feb 30,
    hour 24, second 60) is left to Spark's strict parser, which rejects the same values DuckDB does.
    """
    parts: list[str] = []
    groups: dict[str, int] = {}
    i = 0
    while i < len(fmt):
        ch = fmt[i]
        if ch == "%":
            spec = fmt[i + 1] if i + 1 < len(fmt) else ""
            if spec not in _WIDTH or spec in groups:
                raise ValueError(f"unsupported strptime pattern {fmt!r}")
            groups[spec] = len(groups) + 1
            parts.append((_YEAR_NOT_ZERO if spec == "Y" else "") + f"([0-9]{{1,{_WIDTH[spec]}}}+)")
            i += 2
        elif ch.isspace():
            parts.append(f"{_WS}+")
            while i < len(fmt) and fmt[i].isspace():
                i += 1
        else:
            parts.append("\\" + ch if ch in _REGEX_SPECIAL else ch)
            i += 1
    if not {"Y", "m", "d"} <= set(groups):
        raise ValueError(f"strptime pattern {fmt!r} lacks a date")
    g = {k: f"${n}" for k, n in groups.items()}
    if {"H", "M", "S"} & set(groups):
        repl = f"{g['Y']}-{g['m']}-{g['d']} {g.get('H', '0')}:{g.get('M', '0')}:{g.get('S', '0')}"
        pattern = "y-M-d H:m:s"
    else:
        repl, pattern = f"{g['Y']}-{g['m']}-{g['d']}", "y-M-d"
    return f"^{_WS}*{''.join(parts)}{_WS}*\\z", repl, pattern


# DuckDB's non-strict string -> DATE cast (DuckDB 2, TryConvertDateCast): leading whitespace, year digits,
# a separator out of '-', '/', ' ', '\', 1-2 digit month, the same separator, 1-2 digit day, no digit right
# after it; then either only whitespace, or what makes the whole text a TIMESTAMP (DuckDB 1.5 took any
# other tail). That is: an optional ' ' or 'T', a time H:M[:S[.f]] (up to 10 hour digits, 1-2 digit
# minutes and seconds below 60, at most 24:00:00), then 'Z', a +HH[[:]MM[:SS]] offset or a space and a
# zone name (not checked), then whitespace. Years 1..9999 only (Spark's range; DuckDB also has 0, BC and
# 10000+). tests/engine/test_spark_parity.py checks it against DuckDB.
_TIME_ENDS = rf"(?=[Z+\-]|{_WS}|\z)"
_HOUR_LT24 = r"0*(?:1?[0-9]|2[0-3]):(?:[0-5]?[0-9](?::(?:[0-5]?[0-9](?:\.[0-9]*+)?)?)?)?"
_HOUR_24 = r"0*24:(?:00?+(?::(?:00?+(?:\.(?:0{6}[0-9]*+|0{0,5}+))?)?)?)?"  # fraction digits past 6 are ignored
_TIME = rf"[ T]?{_WS}*+(?=[0-9]{{1,10}}+:)(?:{_HOUR_LT24}|{_HOUR_24}){_TIME_ENDS}"
_OFFSET = r"[+-][0-9]{2}(?::[0-9]{2}(?::[0-9]{2})?|[0-9]{2})?"
_ZONE = rf"(?:(?:Z|{_OFFSET}){_WS}*+| [A-Za-z0-9_/+\-:]*+{_WS}*+)?"
_DATE_CAST_RE = (rf"^{_WS}*+0*+([1-9][0-9]{{0,3}}+)([-/ \\])([0-9]{{1,2}}+)\2([0-9]{{1,2}}+)(?![0-9])"
                 rf"(?:{_WS}*+|{_TIME}{_ZONE})\z")


class SparkDialect(Dialect):
    """Spark SQL spellings of the Dialect primitives, matching DuckDB's results."""

    name = "spark"

    def ident(self, name: str) -> str:
        return spark_ident(name)

    def regex_full(self, expr: str, pattern: str) -> str:
        # \z, not $: Java's $ also matches before a final line terminator.
        rx = "^(?:" + pattern + ")\\z"
        return f"({expr} RLIKE {spark_str(rx)})"

    def regex_search(self, expr: str, pattern: str) -> str:
        return f"({expr} RLIKE {spark_str(pattern)})"

    def _strptime(self, expr: str, fmt: str) -> str:
        rx, repl, pattern = _strptime_regex(fmt)
        lit = spark_str(rx)
        # Session time zone is UTC, so TIMESTAMP -> TIMESTAMP_NTZ keeps the wall-clock value.
        return (f"(CASE WHEN {expr} RLIKE {lit} THEN CAST(try_to_timestamp(regexp_replace({expr}, {lit}, "
                f"{spark_str(repl)}), {spark_str(pattern)}) AS TIMESTAMP_NTZ) END)")

    def parse_date(self, expr: str, fmt: str, digits: bool = False) -> str:
        return f"CAST({self._strptime(expr, fmt)} AS DATE)"

    def parse_timestamp(self, expr: str, fmt: str, digits: bool = False) -> str:
        return self._strptime(expr, fmt)

    def try_cast(self, expr: str, sql_type: str) -> str:
        if sql_type.strip().upper() == "DATE":
            lit = spark_str(_DATE_CAST_RE)
            return (f"(CASE WHEN {expr} RLIKE {lit} THEN CAST(try_to_timestamp(regexp_replace({expr}, {lit}, "
                    f"'$1-$3-$4'), 'y-M-d') AS DATE) END)")
        return f"TRY_CAST({expr} AS {sql_type})"

    def array(self, items: Sequence[str]) -> str:
        return f"array({', '.join(items)})" if items else "CAST(array() AS ARRAY<STRING>)"

    def compact(self, array_expr: str) -> str:
        return f"filter({array_expr}, x -> x IS NOT NULL)"

    def array_len(self, array_expr: str) -> str:
        return f"CAST(size({array_expr}) AS BIGINT)"

    def array_concat(self, a: str, b: str) -> str:
        return f"concat({a}, {b})"

    def json_object(self, pairs: Sequence[tuple[str, str]]) -> str:
        args = ", ".join(f"{spark_str(k)}, {v}" for k, v in pairs)
        return f"to_json(named_struct({args}), map('ignoreNullFields', 'false'))"

    def sha256_hex(self, bytes_expr: str) -> str:
        return f"sha2({bytes_expr}, 256)"

    def utf8_bytes(self, expr: str) -> str:
        return f"encode({expr}, 'UTF-8')"

    def concat_bytes(self, a: str, b: str) -> str:
        return f"concat({a}, {b})"

    def hash64(self, expr: str) -> str:
        return f"xxhash64({expr})"

    def int_div(self, a: str, b: str) -> str:
        return f"({a} div {b})"

    def date_digits(self, date_expr: str) -> str:
        return f"CAST(date_format({date_expr}, 'yyyyMMdd') AS BIGINT)"

    def is_ascii(self, expr: str) -> str:
        return f"(octet_length({expr}) = char_length({expr}))"

    def replace_all(self, expr: str, pattern: str, replacement: str) -> str:
        # RE2 rewrite (\1, \\) -> Java replacement ($1, \\, \$).
        out, i = [], 0
        while i < len(replacement):
            ch = replacement[i]
            if ch == "\\" and i + 1 < len(replacement):
                nxt = replacement[i + 1]
                out.append(f"${nxt}" if nxt.isdigit() else "\\" + nxt)
                i += 2
                continue
            out.append("\\$" if ch == "$" else ch)
            i += 1
        return f"regexp_replace({expr}, {spark_str(pattern)}, {spark_str(''.join(out))})"

    def current_date(self) -> str:
        return "current_date()"

    def varchar(self) -> str:
        return "STRING"

    def decimal(self, scale: int) -> str:
        return f"DECIMAL(18, {scale})"


# -- the session ----------------------------------------------------------------------------------
_SESSION = None
_LOCK = threading.Lock()

# Session-level SQL settings (re-applied to every engine's own session).
SQL_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.ansi.enabled": "true",  # errors like DuckDB's; NULL-on-failure is explicit (try_*)
    "spark.sql.legacy.timeParserPolicy": "CORRECTED",
    "spark.sql.parser.escapedStringLiterals": "false",  # spark_str() doubles backslashes
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.execution.arrow.useLargeVarTypes": "false",
    "spark.sql.parquet.inferTimestampNTZ.enabled": "true",
    "spark.sql.jsonGenerator.ignoreNullFields": "false",
    "spark.sql.legacy.sizeOfNull": "false",  # size(NULL) is NULL, as DuckDB's len(NULL)
}


def spark_session(settings: Settings):
    """The process' one local SparkSession (created on first use; configured by ``Settings.spark_*``)."""
    global _SESSION
    with _LOCK:
        if _SESSION is not None and _SESSION.sparkContext._jsc is not None:
            return _SESSION
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        from pyspark.sql import SparkSession

        local_dir = tempfile.mkdtemp(prefix="govlake-spark-")
        b = (SparkSession.builder
             .master(settings.spark_master)
             .appName("govlake")
             .config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false")
             .config("spark.driver.memory", settings.spark_driver_memory)
             .config("spark.sql.shuffle.partitions", str(settings.spark_shuffle_partitions))
             .config("spark.default.parallelism", "2")
             .config("spark.sql.adaptive.enabled", "true")
             .config("spark.local.dir", local_dir)
             .config("spark.sql.warehouse.dir", os.path.join(local_dir, "warehouse"))
             .config("spark.pyspark.python", os.environ["PYSPARK_PYTHON"])
             .config("spark.python.worker.reuse", "true"))
        for k, v in SQL_CONF.items():
            b = b.config(k, v)
        _SESSION = b.getOrCreate()
        _SESSION.sparkContext.setLogLevel(settings.spark_log_level)
        # py4j logs every connection it closes at INFO, some from __del__ during interpreter shutdown, after
        # the host (pytest, Airflow) has closed its log streams: "--- Logging error ---" noise at exit.
        if logging.getLogger("py4j").level == logging.NOTSET:
            logging.getLogger("py4j").setLevel(logging.WARNING)
        atexit.register(_stop, local_dir)
        return _SESSION


def _stop(local_dir: str) -> None:  # pragma: no cover - process exit
    global _SESSION
    try:
        if _SESSION is not None:
            _SESSION.stop()
    finally:
        _SESSION = None
        shutil.rmtree(local_dir, ignore_errors=True)


# -- Arrow schemas and Delta file statistics -------------------------------------------------------
conform_batch = cast_batch  # Spark's Arrow batches, typed as the relaxed schema

_WRITTEN = "kind string, path string, size long, rows long, stats string, mtime long, part int"
_WRITTEN_SCHEMA = pa.schema([("kind", pa.string()), ("path", pa.string()), ("size", pa.int64()), ("rows", pa.int64()),
                             ("stats", pa.string()), ("mtime", pa.int64()), ("part", pa.int32())])


def _described(kind: str, f: DataFile, part: int) -> dict[str, Any]:
    return {"kind": kind, "path": f.path, "size": f.size, "rows": f.rows, "stats": f.stats, "mtime": f.mtime,
            "part": part}


def _partition_id() -> int:
    from pyspark import TaskContext

    tc = TaskContext.get()
    return tc.partitionId() if tc else 0


def parquet_writer(directory: str, schema: pa.Schema, prefix: str = "part", private: Sequence[str] = ()):
    """A ``mapInArrow`` function: each task writes its partition as one Parquet file in ``directory`` and
    yields one row describing it (nothing for an empty partition). Runs on the executors."""

    def write(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        part = _partition_id()
        f = write_data_file(pafs.LocalFileSystem(), directory, data_file_name(prefix, part), batches, schema, private)
        if f is not None:
            yield pa.RecordBatch.from_pylist([_described("rows", f, part)], schema=_WRITTEN_SCHEMA)

    return write


def staging_task(split: Split, in_schema: pa.Schema, schema: pa.Schema, side_schemas: dict[str, pa.Schema],
                 private: Sequence[str], directory: str, side_dir: str):
    """A ``mapInArrow`` function for ``Engine.stage``: each task passes its batches through the job's split
    function, writes the rows as one data file in ``directory`` and each side output as a Parquet file in
    ``side_dir``, and yields one row per file. Runs on the executors."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        part = _partition_id()
        fs = pafs.LocalFileSystem()
        gathered: dict[str, list[pa.RecordBatch]] = {k: [] for k in side_schemas}

        def rows() -> Iterator[pa.RecordBatch]:
            for b in batches:
                if b.num_rows:
                    piece = split(conform_batch(b, in_schema))
                    for k, side in piece.sides.items():
                        gathered[k].append(side)
                    yield piece.rows

        out = []
        f = write_data_file(fs, directory, data_file_name("part", part), rows(), schema, private)
        if f is not None:
            out.append(_described("rows", f, part))
        for k, sides in gathered.items():
            g = write_data_file(fs, side_dir, data_file_name(f"side-{k}", part), sides, side_schemas[k])
            if g is not None:
                out.append(_described(f"side:{k}", g, part))
        if out:
            yield pa.RecordBatch.from_pylist(out, schema=_WRITTEN_SCHEMA)

    return run


def _data_files(rows: list[Any], kind: str = "rows") -> list[DataFile]:
    return [DataFile(r["path"], r["size"], r["rows"], r["stats"], r["mtime"])
            for r in sorted(rows, key=lambda r: r["part"]) if r["kind"] == kind]


def _local_path(uri: str) -> str:
    """A filesystem path from a local path or file: URI."""
    if uri.startswith("file:"):
        return unquote(urlparse(uri).path)
    return uri


# -- the engine -------------------------------------------------------------------------------------
class SparkEngine(Engine):
    """Spark SQL compute; reads Delta snapshots as Parquet file lists, writes through delta-rs commits."""

    name = "spark"
    PARALLEL_WRITES = True  # executors write the files
    REWRITES_FILES = True  # overwrite-where and MERGE are copy-on-write rewrites computed by Spark

    def __init__(self, settings: Settings, lake: Lake | None = None) -> None:
        super().__init__(lake or Lake(settings))
        self.dialect = SparkDialect()
        # Own session (temp views, SQL conf) on the process' one SparkContext.
        self.spark = spark_session(settings).newSession()
        for k, v in SQL_CONF.items():
            self.spark.conf.set(k, v)
        self._tmp = tempfile.TemporaryDirectory(prefix="govlake-spark-engine-")
        self._views: set[str] = set()
        self._cached: dict[str, Any] = {}

    # -- relations ----------------------------------------------------------------------------
    def _view(self, view: str, df: Any) -> None:
        self._uncache(view)
        df.createOrReplaceTempView(view)
        self._views.add(view)

    def _uncache(self, view: str) -> None:
        df = self._cached.pop(view, None)
        if df is not None:
            df.unpersist()

    def _spark_schema(self, dt: Any):
        from pyspark.sql.types import StructType

        return StructType.fromJson(json.loads(dt.schema().to_json()))

    def register_delta(self, view: str, layer: str, table: str, *, version: int | None = None) -> bool:
        dt = self.lake.table(layer, table, version=version)
        if dt is None:
            return False
        schema = self._spark_schema(dt)
        files = dt.file_uris()
        if not files:
            df = self.spark.createDataFrame([], schema)
        elif self.reads_files():
            # The snapshot's files with the Delta schema: columns missing from older files read as NULL.
            df = self.spark.read.schema(schema).parquet(*files)
        else:
            # No hadoop-aws jars offline: remote snapshots go through delta-rs into the driver.
            df = self.spark.createDataFrame(pa.table(self.lake.dataset(dt).to_table()))
        self._view(view, df)
        return True

    def register_arrow(self, view: str, data: pa.Table) -> None:
        self._view(view, self.spark.createDataFrame(data))

    def execute(self, sql: str) -> None:
        self.spark.sql(sql)

    def arrow_schema(self, df: Any) -> pa.Schema:
        from pyspark.sql.pandas.types import to_arrow_schema

        return relax(to_arrow_schema(df.schema, timezone="UTC"))

    def stream(self, sql: str) -> pa.RecordBatchReader:
        """Executors compute the result in parallel and spill it as Parquet files; the driver then streams
        them back batch by batch, in result order (bounded driver memory, whole-cluster parallelism)."""
        df = self.spark.sql(sql)
        schema = self.arrow_schema(df)
        spill = tempfile.mkdtemp(prefix="stream-", dir=self._tmp.name)
        written = _data_files(df.mapInArrow(parquet_writer(spill, schema, "spill"), _WRITTEN).collect())
        paths = [os.path.join(spill, f.path) for f in written]

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                for p in paths:
                    for b in pq.ParquetFile(p).iter_batches(batch_size=65_536):
                        yield conform_batch(b, schema)
                    os.remove(p)
            finally:
                shutil.rmtree(spill, ignore_errors=True)

        return pa.RecordBatchReader.from_batches(schema, batches())

    def fetch(self, sql: str) -> pa.Table:
        df = self.spark.sql(sql)
        schema = self.arrow_schema(df)
        t = df.toArrow()
        return pa.Table.from_batches([conform_batch(b, schema) for b in t.to_batches()], schema=schema)

    def materialize(self, view: str, sql: str) -> None:
        df = self.spark.sql(sql).cache()
        df.count()  # computed once, now (as DuckDB's temp table is)
        self._view(view, df)
        self._cached[view] = df

    def drop(self, view: str) -> None:
        self._uncache(view)
        self.spark.catalog.dropTempView(view)
        self._views.discard(view)

    # -- writes: parallel Parquet files, one delta-rs commit ------------------------------------
    def _write_df(self, df: Any, directory: str, schema: pa.Schema, private: Sequence[str] = ()) -> list[DataFile]:
        """Executors write ``df`` as Parquet files in ``directory``, one per partition, in parallel."""
        os.makedirs(directory, exist_ok=True)
        return _data_files(df.mapInArrow(parquet_writer(directory, schema, private=private), _WRITTEN).collect())

    def write_files(self, layer: str, table: str, sql: str, *, mode: str, predicate: str | None, commit: Any,
                    description: str | None) -> None:
        """Executors write the result as Parquet files straight into the table directory; the driver commits
        them as one Delta transaction with delta-rs. A predicate overwrite also rewrites the files holding
        matching rows without them and drops the originals in the same commit. Schema evolution and empty
        results take the streaming path."""
        streamed = lambda: self.write_streamed(  # noqa: E731
            layer, table, sql, mode=mode, predicate=predicate, commit=commit, description=description)
        dt = self.lake.table(layer, table)
        df = self.spark.sql(sql)
        schema = self.arrow_schema(df)
        if dt is not None and (mode == "append" or predicate) and not self._same_schema(dt, schema):
            return streamed()  # delta-rs merges the schema (append) or refuses the write (predicate)
        removes: list[str] = []
        if dt is not None and mode == "overwrite" and predicate:
            matches = f"coalesce({predicate}, FALSE)"
            removes = self._files_where(dt, lambda t: t.where(matches))
            if removes:
                df = df.unionByName(self._read_files(dt, removes).where(f"NOT {matches}"))
        written = self._write_df(df, self.lake.uri(layer, table), schema)
        if not written and not removes:
            return streamed()  # no file to commit: delta-rs records the schema / the empty overwrite
        replace_where = dt is not None and predicate and mode == "overwrite"
        self.lake.commit_data_files(layer, table, written, schema, mode="append" if replace_where else mode,
                                    remove=removes, commit=commit, description=description)

    @staticmethod
    def _same_schema(dt: Any, schema: pa.Schema) -> bool:
        return relax(pa.schema(dt.schema().to_arrow())).equals(schema)

    def _log_paths(self, dt: Any) -> dict[str, str]:
        """The snapshot's files: local real path -> path as in the Delta log."""
        actions = pa.table(dt.get_add_actions(flatten=True)).select(["path"]).to_pylist()
        root = _local_path(dt.table_uri)
        return {os.path.realpath(os.path.join(root, unquote(a["path"]))): a["path"] for a in actions}

    def _read_files(self, dt: Any, log_paths: Sequence[str]) -> Any:
        root = _local_path(dt.table_uri)
        return self.spark.read.schema(self._spark_schema(dt)).parquet(
            *[os.path.join(root, unquote(p)) for p in log_paths])

    def _files_where(self, dt: Any, select: Callable[[Any], Any]) -> list[str]:
        """Log paths of the snapshot files holding a row that ``select`` (a DataFrame -> DataFrame filter or
        semi-join over the table's rows) keeps; Spark finds them."""
        by_file = self._log_paths(dt)
        if not by_file:
            return []
        from pyspark.sql.functions import input_file_name

        rows = self.spark.read.schema(self._spark_schema(dt)).parquet(*by_file).withColumn("__f", input_file_name())
        hit = select(rows).select("__f").distinct().collect()
        return [by_file[os.path.realpath(_local_path(r["__f"]))] for r in hit]

    # -- write-audit-publish on the executors -------------------------------------------------------
    def stage(self, layer: str, table: str, sql: str, split: Split, *, schema: pa.Schema,
              side_schemas: dict[str, pa.Schema], private: Sequence[str] = (), slices: Sequence[str] = (),
              merge: bool = False) -> Staged:
        """The split function runs on the executors (``mapInArrow``), which write the rows as data files and
        the side outputs as spill files; the driver only reads back the side outputs (few rows)."""
        staged = self._staging_area(layer, table, schema, private, merge)
        df = self.spark.sql(sql)
        side_dir = tempfile.mkdtemp(prefix="sides-", dir=self._tmp.name)
        try:
            task = staging_task(split, self.arrow_schema(df), staged.schema, side_schemas, private, staged.root, side_dir)
            rows = df.mapInArrow(task, _WRITTEN).collect()
            staged.files = _data_files(rows)
            staged.sides = {k: self._read_sides(side_dir, _data_files(rows, f"side:{k}"), s)
                            for k, s in side_schemas.items()}
        finally:
            shutil.rmtree(side_dir, ignore_errors=True)
        return staged

    @staticmethod
    def _read_sides(side_dir: str, files: list[DataFile], schema: pa.Schema) -> pa.Table:
        tables = [pq.read_table(os.path.join(side_dir, f.path), schema=schema) for f in files]
        return pa.concat_tables(tables) if tables else schema.empty_table()

    def merge_staged(self, staged: Staged, keys: Sequence[str], *, update_if: str | None, commit: Any) -> None:
        """Copy-on-write MERGE computed by Spark: the files holding a staged key are rewritten by the
        executors as (their rows) FULL JOIN (the staged rows) on ``keys``, a staged row winning where
        ``update_if`` holds or its key is new, and committed with the staged rows in place of those files.
        Same result as delta-rs' ``when_matched_update_all(update_if).when_not_matched_insert_all()``.
        Schema evolution, empty sources and object stores keep delta-rs' MERGE."""
        dt = self.lake.table(staged.layer, staged.table)
        if not staged.files or not self.writes_files() or not self._same_schema(dt, staged.schema):
            return super().merge_staged(staged, keys, update_if=update_if, commit=commit)
        source = self.spark.read.schema(self._spark_schema(dt)).parquet(*staged.paths())
        touched = self._files_where(dt, lambda t: t.join(source.select(*keys), list(keys), "left_semi"))
        target = self._read_files(dt, touched) if touched else self.spark.createDataFrame([], self._spark_schema(dt))
        merged = self._upsert(target, source, keys, update_if, staged.schema.names)
        try:
            written = self._write_df(merged, self.lake.uri(staged.layer, staged.table), staged.schema, staged.private)
        finally:
            self.drop("__merge_t")
            self.drop("__merge_s")
        self.lake.commit_data_files(staged.layer, staged.table, written, staged.schema, remove=touched, commit=commit)

    def _upsert(self, target: Any, source: Any, keys: Sequence[str], update_if: str | None, names: list[str]) -> Any:
        from pyspark.sql.functions import lit

        self._view("__merge_t", target.withColumn("__t", lit(True)))
        self._view("__merge_s", source.withColumn("__s", lit(True)))
        wins = f"(coalesce(s.__s, FALSE) AND (t.__t IS NULL OR coalesce({update_if or 'TRUE'}, FALSE)))"
        cols = ", ".join(f"CASE WHEN {wins} THEN s.{spark_ident(c)} ELSE t.{spark_ident(c)} END AS {spark_ident(c)}"
                         for c in names)
        on = " AND ".join(f"t.{spark_ident(k)} = s.{spark_ident(k)}" for k in keys)
        return self.spark.sql(f"SELECT {cols} FROM __merge_t t FULL OUTER JOIN __merge_s s ON {on}")

    def close(self) -> None:
        try:
            for view in list(self._views):
                self.drop(view)
        finally:
            self._tmp.cleanup()


__all__ = ["SparkDialect", "SparkEngine", "spark_session", "spark_str"]
