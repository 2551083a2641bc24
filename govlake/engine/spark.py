"""The scale-out engine: Spark SQL over the lake's Delta snapshots, with Delta commits done by delta-rs.

No delta-spark: Spark reads the exact Parquet files of a Delta snapshot (the file list comes from
delta-rs), executors write Parquet files in parallel (``mapInArrow`` + pyarrow, with Delta file
statistics) and the driver commits them atomically with delta-rs' ``create_write_transaction``. So the
lake is written by one Delta implementation whichever engine computes, and no JVM jars are downloaded.

``SparkDialect`` spells the Dialect primitives so that results are identical to DuckDB's (the parity
tests in ``tests/engine`` hold the two engines to that): strptime and date casts are emulated exactly
(DuckDB's widths, whitespace and validity rules) rather than delegated to Java's formatter.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import unquote, urlparse

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from govlake.engine.base import Dialect, Engine
from govlake.lake import Lake
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


def _strptime_regex(fmt: str) -> tuple[str, list[str]]:
    """A Java regex accepting exactly what DuckDB's strptime accepts for ``fmt`` (up to value validity).

    DuckDB skips leading/trailing whitespace, a space in the format matches one or more whitespace
    characters, and each numeric specifier reads greedily up to its width (1-4 digits for %Y, 1-2 for the
    others) without backtracking, hence the possessive quantifiers.
    """
    parts: list[str] = []
    fields: list[str] = []
    i = 0
    while i < len(fmt):
        ch = fmt[i]
        if ch == "%":
            spec = fmt[i + 1] if i + 1 < len(fmt) else ""
            if spec not in _WIDTH:
                raise ValueError(f"unsupported strptime specifier %{spec} in {fmt!r}")
            parts.append(f"([0-9]{{1,{_WIDTH[spec]}}}+)")
            fields.append(spec)
            i += 2
        elif ch.isspace():
            parts.append(f"{_WS}+")
            while i < len(fmt) and fmt[i].isspace():
                i += 1
        else:
            parts.append("\\" + ch if ch in _REGEX_SPECIAL else ch)
            i += 1
    return f"^{_WS}*{''.join(parts)}{_WS}*\\z", fields


# DuckDB's non-strict string -> DATE cast (Date::TryConvertDate): leading whitespace, year digits, a
# separator out of '-', '/', ' ', '\', 1-2 digit month, the same separator, 1-2 digit day, then anything
# that does not start with a digit.
_DATE_CAST_RE = r"^[ \t\n\x0B\f\r]*([0-9]++)([-/ \\])([0-9]{1,2}+)\2([0-9]{1,2}+)(?![0-9])"


class SparkDialect(Dialect):
    """Spark SQL spellings of the Dialect primitives, matching DuckDB's results."""

    name = "spark"

    def ident(self, name: str) -> str:
        return spark_ident(name)

    def regex_full(self, expr: str, pattern: str) -> str:
        # \z, not $: Java's $ also matches before a final line terminator.
        rx = "^(?:" + pattern + ")\\z"
        return f"({expr} RLIKE {spark_str(rx)})"

    def _strptime(self, expr: str, fmt: str) -> str:
        rx, fields = _strptime_regex(fmt)
        lit = spark_str(rx)
        grp = {spec: f"CAST(regexp_extract({expr}, {lit}, {n}) AS INT)" for n, spec in enumerate(fields, 1)}
        for spec in ("Y", "m", "d"):
            if spec not in grp:
                raise ValueError(f"strptime format {fmt!r} lacks %{spec}")
        h, mi, s = (grp.get(k, "0") for k in ("H", "M", "S"))
        # Year 0 makes try_make_timestamp_ntz raise; second 60 would roll over (DuckDB rejects both).
        guard = f"{expr} RLIKE {lit} AND {grp['Y']} >= 1" + (f" AND {s} < 60" if "S" in grp else "")
        return f"(CASE WHEN {guard} THEN try_make_timestamp_ntz({grp['Y']}, {grp['m']}, {grp['d']}, {h}, {mi}, {s}) END)"

    def parse_date(self, expr: str, fmt: str) -> str:
        return f"CAST({self._strptime(expr, fmt)} AS DATE)"

    def parse_timestamp(self, expr: str, fmt: str) -> str:
        return self._strptime(expr, fmt)

    def try_cast(self, expr: str, sql_type: str) -> str:
        if sql_type.strip().upper() == "DATE":
            lit = spark_str(_DATE_CAST_RE)
            y, m, d = (f"TRY_CAST(regexp_extract({expr}, {lit}, {n}) AS BIGINT)" for n in (1, 3, 4))
            return (f"(CASE WHEN {expr} RLIKE {lit} AND {y} BETWEEN 1 AND 9999 "
                    f"THEN CAST(try_make_timestamp_ntz({y}, {m}, {d}, 0, 0, 0) AS DATE) END)")
        return f"TRY_CAST({expr} AS {sql_type})"

    def array(self, items: Sequence[str]) -> str:
        return f"array({', '.join(items)})" if items else "CAST(array() AS ARRAY<STRING>)"

    def compact(self, array_expr: str) -> str:
        return f"filter({array_expr}, x -> x IS NOT NULL)"

    def array_len(self, array_expr: str) -> str:
        return f"CAST(size({array_expr}) AS BIGINT)"

    def json_object(self, pairs: Sequence[tuple[str, str]]) -> str:
        args = ", ".join(f"{spark_str(k)}, {v}" for k, v in pairs)
        return f"to_json(named_struct({args}), map('ignoreNullFields', 'false'))"

    def hmac_hex(self, expr: str, key: bytes) -> str:
        import hashlib

        k = key if len(key) <= 64 else hashlib.sha256(key).digest()
        k = k.ljust(64, b"\0")
        ipad = bytes(b ^ 0x36 for b in k).hex()
        opad = bytes(b ^ 0x5C for b in k).hex()
        inner = f"unhex(sha2(concat(unhex('{ipad}'), encode({expr}, 'UTF-8')), 256))"
        return f"sha2(concat(unhex('{opad}'), {inner}), 256)"

    def digit_dot(self, expr: str, weights: Sequence[int]) -> str:
        w = ", ".join(f"CAST({x} AS BIGINT)" for x in weights)
        return (f"aggregate(zip_with(split(substr({expr}, 1, {len(weights)}), ''), array({w}), "
                f"(c, w) -> TRY_CAST(c AS BIGINT) * w), CAST(0 AS BIGINT), (acc, v) -> acc + v)")

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
}


def spark_session():
    """The process' one local SparkSession (created on first use; configurable by environment)."""
    global _SESSION
    with _LOCK:
        if _SESSION is not None and _SESSION.sparkContext._jsc is not None:
            return _SESSION
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        from pyspark.sql import SparkSession

        local_dir = tempfile.mkdtemp(prefix="govlake-spark-")
        b = (SparkSession.builder
             .master(os.environ.get("GOVLAKE_SPARK_MASTER", "local[2]"))
             .appName("govlake")
             .config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false")
             .config("spark.driver.memory", os.environ.get("GOVLAKE_SPARK_DRIVER_MEMORY", "1g"))
             .config("spark.sql.shuffle.partitions", os.environ.get("GOVLAKE_SPARK_SHUFFLE_PARTITIONS", "4"))
             .config("spark.default.parallelism", "2")
             .config("spark.sql.adaptive.enabled", "true")
             .config("spark.local.dir", local_dir)
             .config("spark.sql.warehouse.dir", os.path.join(local_dir, "warehouse"))
             .config("spark.pyspark.python", os.environ["PYSPARK_PYTHON"])
             .config("spark.python.worker.reuse", "true"))
        for k, v in SQL_CONF.items():
            b = b.config(k, v)
        _SESSION = b.getOrCreate()
        _SESSION.sparkContext.setLogLevel(os.environ.get("GOVLAKE_SPARK_LOG_LEVEL", "ERROR"))
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
def _nullable_type(t: pa.DataType) -> pa.DataType:
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
    """Every field nullable and plain (not large) types: what DuckDB hands out, and what Delta stores."""
    return pa.schema([pa.field(f.name, _nullable_type(f.type), True) for f in schema])


def conform_batch(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    if batch.schema.equals(schema):
        return batch
    cols = [batch.column(i).cast(f.type) for i, f in enumerate(schema)]
    return pa.RecordBatch.from_arrays(cols, schema=schema)


def _ms_floor(v: datetime) -> datetime:
    return v.replace(microsecond=v.microsecond // 1000 * 1000)


def _stat_value(t: pa.DataType, v: Any, upper: bool) -> Any:
    """A JSON value for Delta's minValues/maxValues, or None to leave the column out (always safe)."""
    if v is None:
        return None
    if pa.types.is_integer(t):
        return int(v)
    if pa.types.is_floating(t):
        return float(v) if math.isfinite(v) else None
    if pa.types.is_date(t):
        return v.isoformat()
    if pa.types.is_timestamp(t) and t.tz is not None:
        # Delta stores millisecond precision: round the lower bound down and the upper bound up.
        w = _ms_floor(v)
        if upper and w != v:
            w += timedelta(milliseconds=1)
        w = w.astimezone(timezone.utc)
        return w.strftime("%Y-%m-%dT%H:%M:%S.") + f"{w.microsecond // 1000:03d}Z"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return v if len(v) <= 32 else None
    return None  # decimals, booleans, naive timestamps, binaries: no bounds (pruning stays correct)


class FileStats:
    """numRecords, nullCount and min/max of one Parquet file, accumulated batch by batch."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.rows = 0
        self.nulls: dict[str, int] = {}
        self.mins: dict[str, Any] = {}
        self.maxs: dict[str, Any] = {}

    def update(self, batch: pa.RecordBatch) -> None:
        self.rows += batch.num_rows
        for f, col in zip(self.schema, batch.columns):
            if pa.types.is_nested(f.type):
                continue
            self.nulls[f.name] = self.nulls.get(f.name, 0) + col.null_count
            if col.null_count == len(col) or not (pa.types.is_integer(f.type) or pa.types.is_floating(f.type)
                                                   or pa.types.is_date(f.type) or pa.types.is_timestamp(f.type)
                                                   or pa.types.is_string(f.type)):
                continue
            mm = pc.min_max(col).as_py()
            lo, hi = mm["min"], mm["max"]
            if lo is not None and (f.name not in self.mins or lo < self.mins[f.name]):
                self.mins[f.name] = lo
            if hi is not None and (f.name not in self.maxs or hi > self.maxs[f.name]):
                self.maxs[f.name] = hi

    def json(self) -> str:
        types = {f.name: f.type for f in self.schema}
        mins = {k: _stat_value(types[k], v, False) for k, v in self.mins.items()}
        maxs = {k: _stat_value(types[k], v, True) for k, v in self.maxs.items()}
        keep = {k for k in mins if mins[k] is not None and maxs.get(k) is not None}
        return json.dumps({
            "numRecords": self.rows,
            "minValues": {k: mins[k] for k in mins if k in keep},
            "maxValues": {k: maxs[k] for k in maxs if k in keep},
            "nullCount": self.nulls,
        }, ensure_ascii=False)


_WRITTEN = "path string, size long, rows long, stats string, mtime long, part int"


def parquet_writer(directory: str, schema: pa.Schema, prefix: str = "part"):
    """A ``mapInArrow`` function: each task writes its partition as one Parquet file in ``directory`` and
    yields one row describing it (nothing for an empty partition). Runs on the executors."""

    def write(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        tc = TaskContext.get()
        part = tc.partitionId() if tc else 0
        name = f"{prefix}-{part:05d}-{uuid.uuid4()}-c000.snappy.parquet"
        path = os.path.join(directory, name)
        writer = None
        stats = FileStats(schema)
        try:
            for b in batches:
                if b.num_rows == 0:
                    continue
                b = conform_batch(b, schema)
                if writer is None:
                    writer = pq.ParquetWriter(path, schema, compression="snappy")
                writer.write_batch(b)
                stats.update(b)
        finally:
            if writer is not None:
                writer.close()
        if writer is None:
            return
        st = os.stat(path)
        yield pa.RecordBatch.from_pylist([{
            "path": name, "size": st.st_size, "rows": stats.rows, "stats": stats.json(),
            "mtime": int(st.st_mtime * 1000), "part": part,
        }], schema=pa.schema([("path", pa.string()), ("size", pa.int64()), ("rows", pa.int64()),
                              ("stats", pa.string()), ("mtime", pa.int64()), ("part", pa.int32())]))

    return write


def _local_path(uri: str) -> str:
    """A filesystem path from a local path or file: URI."""
    if uri.startswith("file:"):
        return unquote(urlparse(uri).path)
    return uri


# -- the engine -------------------------------------------------------------------------------------
class SparkEngine(Engine):
    """Spark SQL compute; reads Delta snapshots as Parquet file lists, writes through delta-rs commits."""

    name = "spark"

    def __init__(self, settings: Settings, lake: Lake | None = None) -> None:
        super().__init__(lake or Lake(settings))
        self.dialect = SparkDialect()
        # Own session (temp views, SQL conf) on the process' one SparkContext.
        self.spark = spark_session().newSession()
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
        elif self.lake.settings.is_local:
            # The snapshot's files with the Delta schema: columns missing from older files read as NULL.
            df = self.spark.read.schema(schema).parquet(*files)
        else:
            # No hadoop-aws jars offline: remote snapshots go through delta-rs into the driver.
            df = self.spark.createDataFrame(pa.table(dt.to_pyarrow_table()))
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
        rows = df.mapInArrow(parquet_writer(spill, schema, "spill"), _WRITTEN).collect()
        paths = [os.path.join(spill, r["path"]) for r in sorted(rows, key=lambda r: r["part"])]

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
    def write_delta(self, layer: str, table: str, sql: str, *, mode: str = "append", predicate: str | None = None,
                    commit: Any = None, description: str | None = None) -> None:
        if mode not in ("append", "overwrite"):
            raise ValueError(f"unknown write mode: {mode}")
        dt = self.lake.table(layer, table)
        df = self.spark.sql(sql)
        schema = self.arrow_schema(df)
        same_schema = dt is not None and relax(pa.schema(dt.schema().to_arrow())).equals(schema)
        if not self.lake.settings.is_local or (dt is not None and mode == "append" and not same_schema) or \
                (dt is not None and predicate and not same_schema):
            # Remote lakes, schema evolution on append and schema mismatches: delta-rs decides (stream).
            return super().write_delta(layer, table, sql, mode=mode, predicate=predicate, commit=commit,
                                       description=description)
        from deltalake import Schema as DeltaSchema
        from deltalake.transaction import AddAction, create_table_with_add_actions

        uri = self.lake.uri(layer, table)
        removes: list[Any] = []
        tx_mode = mode
        if dt is not None and mode == "overwrite" and predicate:
            # Replace only the rows matching the predicate: rewrite the files holding such rows without
            # them, and commit those files' removal with the new files (one append transaction).
            removes, kept = self._rows_outside(dt, predicate)
            if kept is not None:
                df = df.unionByName(kept)
            tx_mode = "append"
        os.makedirs(uri, exist_ok=True)
        written = df.mapInArrow(parquet_writer(uri, schema), _WRITTEN).collect()
        adds = [AddAction(r["path"], r["size"], {}, r["mtime"], True, r["stats"])
                for r in sorted(written, key=lambda r: r["part"])]
        if dt is None:
            create_table_with_add_actions(uri, DeltaSchema.from_arrow(schema), adds, mode="error",
                                          description=description, storage_options=self.lake.storage_options,
                                          commit_properties=commit)
        else:
            dt.create_write_transaction([*removes, *adds], tx_mode, schema, commit_properties=commit)

    def _rows_outside(self, dt: Any, predicate: str) -> tuple[list[Any], Any]:
        """Remove actions for the snapshot files holding rows that match ``predicate`` and a DataFrame of
        those files' other rows (None when no file matches)."""
        from deltalake.transaction import RemoveAction

        actions = pa.table(dt.get_add_actions(flatten=True)).select(["path", "size_bytes"]).to_pylist()
        if not actions:
            return [], None
        root = _local_path(dt.table_uri)
        by_file = {os.path.realpath(os.path.join(root, unquote(a["path"]))): a for a in actions}
        schema = self._spark_schema(dt)
        matches = f"coalesce({predicate}, FALSE)"
        hit = (self.spark.read.schema(schema).parquet(*by_file).where(matches)
               .selectExpr("input_file_name() AS f").distinct().collect())
        if not hit:
            return [], None
        touched = [by_file[os.path.realpath(_local_path(r["f"]))] for r in hit]
        now = int(time.time() * 1000)
        removes = [RemoveAction(a["path"], True, now, a["size_bytes"], {}) for a in touched]
        paths = [os.path.join(root, unquote(a["path"])) for a in touched]
        return removes, self.spark.read.schema(schema).parquet(*paths).where(f"NOT {matches}")

    def close(self) -> None:
        try:
            for view in list(self._views):
                self.drop(view)
        finally:
            self._tmp.cleanup()


__all__ = ["SparkDialect", "SparkEngine", "spark_session", "spark_str"]
