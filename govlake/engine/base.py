"""Engine and Dialect: everything else in govlake stays engine-agnostic (the SQLMesh adapter idea).

A job describes its transformation as SQL built from Dialect primitives; the Engine registers Delta tables
as relations, runs the SQL and hands the result to the lake as a Delta transaction. What an engine can do
natively is declared as class flags (``PARALLEL_WRITES``, ``REWRITES_FILES``, ``READS_OBJECT_STORE``);
the base class falls back to delta-rs for the rest, so jobs never ask which engine they run on. Subclasses
override only what differs.

Every Delta write goes through here or through :class:`govlake.lake.Lake`: ``write_delta`` /
``merge_delta`` for query results, and ``stage`` -> ``publish`` (or ``discard``) for write-audit-publish,
where the rows pass a job's split function wherever the engine computes them (in this process, or on
Spark's executors) and the driver only decides and commits.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from govlake.lake import DataFile, Lake, delta_types, empty_like, write_data_file
from govlake.sqltext import ident, sql_str  # noqa: F401  (re-exported: ``from govlake.engine.base import sql_str``)

if TYPE_CHECKING:  # imported where used: a ``govlake run`` with nothing to do opens no engine and loads no pyarrow
    import pyarrow as pa
    import pyarrow.fs as pafs


class Dialect:
    """Portable SQL with hooks for the primitives whose spelling differs between engines.

    The base spelling is DuckDB's; ``SparkDialect`` overrides what Spark spells differently.
    """

    name = "duckdb"

    def ident(self, name: str) -> str:
        return ident(name)

    def regex_full(self, expr: str, pattern: str) -> str:
        return f"regexp_full_match({expr}, {sql_str(pattern)})"

    def regex_search(self, expr: str, pattern: str) -> str:
        """TRUE when ``pattern`` matches anywhere in the text (Python's re.search, as GX's regex expectations)."""
        return f"regexp_matches({expr}, {sql_str(pattern)})"

    def parse_date(self, expr: str, fmt: str, digits: bool = False) -> str:
        """``fmt`` is a strptime pattern (%Y %m %d); NULL when it does not parse. ``digits``: the caller
        knows the text is digits (no guard needed)."""
        return f"CAST({self.parse_timestamp(expr, fmt, digits)} AS DATE)"

    def parse_timestamp(self, expr: str, fmt: str, digits: bool = False) -> str:
        if digits:
            return f"try_strptime({expr}, {sql_str(fmt)})"
        # DuckDB's strptime reads the words 'epoch' / 'infinity' as dates whatever the format: digits only.
        return f"CASE WHEN regexp_matches({expr}, '^\\s*[0-9]') THEN try_strptime({expr}, {sql_str(fmt)}) END"

    def try_cast(self, expr: str, sql_type: str) -> str:
        return f"TRY_CAST({expr} AS {sql_type})"

    def array(self, items: Sequence[str]) -> str:
        return f"list_value({', '.join(items)})" if items else "CAST([] AS VARCHAR[])"

    def compact(self, array_expr: str) -> str:
        """Drop NULL elements from an array."""
        return f"list_filter({array_expr}, lambda x: x IS NOT NULL)"

    def array_len(self, array_expr: str) -> str:
        return f"len({array_expr})"

    def array_concat(self, a: str, b: str) -> str:
        return f"list_concat({a}, {b})"

    def json_object(self, pairs: Sequence[tuple[str, str]]) -> str:
        args = ", ".join(f"{sql_str(k)}, {v}" for k, v in pairs)
        return f"CAST(json_object({args}) AS VARCHAR)"

    def hmac_hex(self, expr: str, key: bytes) -> str:
        """HMAC-SHA256 of a text expression, as lowercase hex (RFC 2104, computed in SQL).

        The construction is shared; dialects override only the byte primitives below.
        """
        k = key if len(key) <= 64 else hashlib.sha256(key).digest()
        k = k.ljust(64, b"\0")
        ipad = bytes(b ^ 0x36 for b in k).hex()
        opad = bytes(b ^ 0x5C for b in k).hex()
        inner_hash = self.sha256_hex(self.concat_bytes(f"unhex('{ipad}')", self.utf8_bytes(expr)))
        return self.sha256_hex(self.concat_bytes(f"unhex('{opad}')", f"unhex({inner_hash})"))

    def sha256_hex(self, bytes_expr: str) -> str:
        return f"sha256({bytes_expr})"

    def utf8_bytes(self, expr: str) -> str:
        return f"encode({expr})"

    def concat_bytes(self, a: str, b: str) -> str:
        return f"({a} || {b})"

    def hash64(self, expr: str) -> str:
        """A 64-bit non-cryptographic hash of a value (stable within a process; never NULL)."""
        return f"hash({expr})"

    def int_div(self, a: str, b: str) -> str:
        """Integer division of two integer expressions."""
        return f"({a} // {b})"

    def date_digits(self, date_expr: str) -> str:
        """A date as the integer YYYYMMDD (comparable with digits read from an ID number)."""
        return f"CAST(strftime({date_expr}, '%Y%m%d') AS BIGINT)"

    def is_ascii(self, expr: str) -> str:
        """TRUE when the text is pure ASCII (bytes == characters): a cheap guard for costly rewrites."""
        return f"(strlen({expr}) = length({expr}))"

    def replace_all(self, expr: str, pattern: str, replacement: str) -> str:
        """Regex replace of every match; ``replacement`` refers to groups as \\1, \\2."""
        return f"regexp_replace({expr}, {sql_str(pattern)}, {sql_str(replacement)}, 'g')"

    def current_date(self) -> str:
        return "current_date"

    def varchar(self) -> str:
        return "VARCHAR"

    def decimal(self, scale: int) -> str:
        return f"DECIMAL(18, {scale})"


@dataclass
class Piece:
    """What a split function makes of one batch of a staged query: the rows for the table, and side outputs
    (few rows: rows set aside, counts) gathered for the driver."""

    rows: pa.RecordBatch
    sides: dict[str, pa.RecordBatch] = field(default_factory=dict)


Split = Callable[["pa.RecordBatch"], Piece]


@dataclass
class Staged:
    """Data files written for one table and not committed: the "write" of write-audit-publish.

    ``in_table``: the files sit in the table directory and are committed as they are; otherwise they are in
    a scratch directory (``scratch``), the source of a merge (``merge``) or of a delta-rs write to an
    object store."""

    layer: str
    table: str
    schema: pa.Schema
    private: tuple[str, ...]
    fs: Any  # the pyarrow filesystem holding the files
    root: str  # their directory in ``fs``
    in_table: bool
    merge: bool = False
    scratch: str | None = None
    files: list[DataFile] = field(default_factory=list)
    sides: dict[str, pa.Table] = field(default_factory=dict)

    def paths(self) -> list[str]:
        return [f"{self.root}/{f.path}" for f in self.files]

    def reader(self) -> pa.RecordBatchReader:
        """The staged rows as one stream (bounded memory)."""
        import pyarrow as pa

        if not self.files:
            return pa.RecordBatchReader.from_batches(self.schema, iter(()))
        import pyarrow.dataset as pads

        ds = pads.dataset(self.paths(), schema=self.schema, format="parquet", filesystem=self.fs)
        return ds.scanner().to_reader()


def _whole(batch: pa.RecordBatch) -> Piece:
    """The split that keeps every row (a plain staged write)."""
    return Piece(batch)


def data_file_name(prefix: str = "part", part: int = 0) -> str:
    return f"{prefix}-{part:05d}-{uuid.uuid4()}-c000.snappy.parquet"


class Engine(ABC):
    """What a job may ask of a compute engine."""

    name: str = "abstract"
    dialect: Dialect

    # Capabilities (class flags, as SQLMesh's engine adapters declare theirs).
    #: writes a query's result as Parquet files in parallel itself (else: streamed into delta-rs)
    PARALLEL_WRITES: bool = False
    #: rewrites the files an overwrite-where or a merge touches itself (else: delta-rs does)
    REWRITES_FILES: bool = False
    #: scans object-store Parquet files itself (else: through delta-rs' Arrow datasets)
    READS_OBJECT_STORE: bool = False

    def __init__(self, lake: Lake) -> None:
        self.lake = lake

    def reads_files(self) -> bool:
        """Whether this engine scans a snapshot's Parquet files with its own reader."""
        return self.lake.local or self.READS_OBJECT_STORE

    def writes_files(self) -> bool:
        """Whether this engine writes data files into the lake's table directories itself."""
        return self.PARALLEL_WRITES and self.lake.local

    @abstractmethod
    def register_delta(self, view: str, layer: str, table: str, *, version: int | None = None) -> bool:
        """Expose a Delta table as relation ``view``; False (and an empty relation is NOT created) if absent."""

    @abstractmethod
    def register_arrow(self, view: str, data: pa.Table) -> None: ...

    @abstractmethod
    def execute(self, sql: str) -> None: ...

    @abstractmethod
    def stream(self, sql: str) -> pa.RecordBatchReader:
        """Run a query and stream its result as Arrow batches (bounded memory)."""

    @abstractmethod
    def fetch(self, sql: str) -> pa.Table: ...

    @abstractmethod
    def materialize(self, view: str, sql: str) -> None:
        """Compute ``sql`` once and keep it as relation ``view`` for the rest of the job."""

    def drop(self, view: str) -> None:
        self.execute(f"DROP VIEW IF EXISTS {ident(view)}")

    def sliced(self, sql: str, filters: Sequence[str]):
        """Yield the result of ``sql`` one filter at a time: bounded memory, and each slice is computed with
        the engine's full parallelism (streaming readers may not be)."""
        for f in filters:
            yield from self.fetch(f"SELECT * FROM ({sql}) sl WHERE {f}").to_batches()

    def scalar(self, sql: str) -> Any:
        t = self.fetch(sql)
        return t.column(0)[0].as_py() if t.num_rows else None

    # -- writes: delta-rs by default; engines with PARALLEL_WRITES write the files themselves ----------
    def write_delta(self, layer: str, table: str, sql: str, *, mode: str = "append", predicate: str | None = None,
                    commit: Any = None, description: str | None = None) -> None:
        if mode not in ("append", "overwrite"):
            raise ValueError(f"unknown write mode: {mode}")
        if self.writes_files() and (predicate is None or self.REWRITES_FILES):
            return self.write_files(layer, table, sql, mode=mode, predicate=predicate, commit=commit,
                                    description=description)
        return self.write_streamed(layer, table, sql, mode=mode, predicate=predicate, commit=commit,
                                   description=description)

    def write_streamed(self, layer: str, table: str, sql: str, *, mode: str = "append", predicate: str | None = None,
                       commit: Any = None, description: str | None = None) -> None:
        """The result streamed into one delta-rs write."""
        reader = self.stream(sql)
        if mode == "append":
            self.lake.append(layer, table, reader, commit=commit, description=description)
        else:
            self.lake.overwrite(layer, table, reader, predicate=predicate, commit=commit, description=description)

    def write_files(self, layer: str, table: str, sql: str, *, mode: str, predicate: str | None, commit: Any,
                    description: str | None) -> None:
        """Engines with ``PARALLEL_WRITES`` write the result's files themselves and commit them."""
        raise NotImplementedError

    def merge_delta(self, layer: str, table: str, sql: str, keys: Sequence[str], *, update_if: str | None = None,
                    commit: Any = None) -> dict[str, Any]:
        return self.lake.merge(layer, table, self.stream(sql), keys, update_if=update_if, commit=commit)

    # -- write-audit-publish -------------------------------------------------------------------------
    def stage(self, layer: str, table: str, sql: str, split: Split, *, schema: pa.Schema,
              side_schemas: dict[str, pa.Schema], private: Sequence[str] = (), slices: Sequence[str] = (),
              merge: bool = False) -> Staged:
        """Run ``sql``, pass every batch through ``split`` and write its rows as data files of ``layer.table``
        without committing them; the side outputs come back gathered. ``merge``: the files will be merged
        into the existing table (they go to a scratch directory). ``slices``: filters cutting the result for
        engines that pull it into this process (bounded memory, full parallelism per slice).

        This in-process version pulls the slices and writes one file; engines computing on workers elsewhere
        override it so that the split runs there."""
        import pyarrow as pa

        staged = self._staging_area(layer, table, schema, private, merge)
        gathered: dict[str, list[pa.RecordBatch]] = {k: [] for k in side_schemas}

        def rows() -> Iterator[pa.RecordBatch]:
            source = self.sliced(sql, slices) if slices else self.stream(sql)
            for batch in source:
                piece = split(batch)
                for k, side in piece.sides.items():
                    gathered[k].append(side)
                yield piece.rows

        written = write_data_file(staged.fs, staged.root, data_file_name(), rows(), staged.schema, private)
        staged.files += [written] if written else []
        staged.sides = {k: pa.Table.from_batches(v, schema=side_schemas[k]) for k, v in gathered.items()}
        return staged

    def _staging_area(self, layer: str, table: str, schema: pa.Schema, private: Sequence[str], merge: bool) -> Staged:
        """In the table directory when the files can be committed as they are (a new or replaced table on a
        local lake), else in a local scratch directory."""
        schema = delta_types(schema)
        if not merge and self.lake.local:
            fs, root = self.lake.data_files_target(layer, table)
            return Staged(layer, table, schema, tuple(private), fs, root, in_table=True)
        import pyarrow.fs as pafs

        scratch = tempfile.mkdtemp(prefix="govlake-stage-")
        return Staged(layer, table, schema, tuple(private), pafs.LocalFileSystem(), scratch, in_table=False,
                      merge=merge, scratch=scratch)

    def add_rows(self, staged: Staged, rows: pa.Table) -> None:
        """Add rows computed in this process (a few) to a staged write, as one more file."""
        written = write_data_file(staged.fs, staged.root, data_file_name(), rows.to_batches(), staged.schema,
                                  staged.private)
        staged.files += [written] if written else []

    def publish(self, staged: Staged, *, keys: Sequence[str] = (), update_if: str | None = None, commit: Any = None,
                description: str | None = None) -> None:
        """Commit a staged write as one Delta transaction: a merge on ``keys`` into the existing table when it
        was staged for one, else the table's (new) content."""
        try:
            if staged.merge:
                self.merge_staged(staged, keys, update_if=update_if, commit=commit)
            elif staged.in_table and staged.files:
                self.lake.commit_data_files(staged.layer, staged.table, staged.files, staged.schema, mode="overwrite",
                                            commit=commit, description=description)
            else:  # no file (a table without rows), or an object store: delta-rs writes it
                self.lake.overwrite(staged.layer, staged.table, staged.reader() if staged.files else
                                    empty_like(staged.schema), commit=commit, description=description,
                                    private=staged.private)
        finally:
            self._drop_scratch(staged)

    def upsert(self, layer: str, table: str, sql: str, keys: Sequence[str], *, commit: Any = None,
               description: str | None = None) -> None:
        """Upsert the rows of ``sql`` by ``keys`` into the existing ``layer.table`` (each key's row replaced or
        added): staged in the table's schema, then merged like a conform pass."""
        schema = self.lake.arrow_schema(layer, table)
        staged = self.stage(layer, table, sql, _whole, schema=schema, side_schemas={}, merge=True)
        self.publish(staged, keys=keys, commit=commit, description=description)

    def merge_staged(self, staged: Staged, keys: Sequence[str], *, update_if: str | None, commit: Any) -> None:
        """Upsert the staged rows by ``keys`` with delta-rs' MERGE (it rewrites across the whole target).
        Engines that write the lake's files themselves override it with a copy-on-write of only the files
        holding a matched key (DuckDB, Spark): what a delivery costs then follows the delivery."""
        self.lake.merge(staged.layer, staged.table, staged.reader(), keys, update_if=update_if, commit=commit,
                        private=staged.private)

    def discard(self, staged: Staged) -> None:
        """Remove the files of a staged write that will not be published (no Delta version knows them)."""
        for path in staged.paths():
            staged.fs.delete_file(path)
        staged.files = []
        self._drop_scratch(staged)

    @staticmethod
    def _drop_scratch(staged: Staged) -> None:
        if staged.scratch is not None:
            shutil.rmtree(staged.scratch, ignore_errors=True)

    def close(self) -> None:  # pragma: no cover - trivial
        pass

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
