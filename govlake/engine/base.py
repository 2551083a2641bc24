"""Engine and Dialect: everything else in govlake stays engine-agnostic (the SQLMesh adapter idea).

A job describes its transformation as SQL built from Dialect primitives; the Engine registers Delta tables
as relations, runs the SQL and hands the result to the lake as a Delta transaction. Subclasses override
only what differs.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from govlake.lake import Lake


def sql_str(value: str) -> str:
    """A single-quoted SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


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


class Engine(ABC):
    """What a job may ask of a compute engine."""

    name: str = "abstract"
    dialect: Dialect

    def __init__(self, lake: Lake) -> None:
        self.lake = lake

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

    # Writes go to delta-rs by default; Spark overrides them with parallel executor writes.
    def write_delta(self, layer: str, table: str, sql: str, *, mode: str = "append", predicate: str | None = None,
                    commit: Any = None, description: str | None = None) -> None:
        reader = self.stream(sql)
        if mode == "append":
            self.lake.append(layer, table, reader, commit=commit, description=description)
        else:
            self.lake.overwrite(layer, table, reader, predicate=predicate, commit=commit, description=description)

    def merge_delta(self, layer: str, table: str, sql: str, keys: Sequence[str], *, update_if: str | None = None,
                    commit: Any = None) -> dict[str, Any]:
        return self.lake.merge(layer, table, self.stream(sql), keys, update_if=update_if, commit=commit)

    def close(self) -> None:  # pragma: no cover - trivial
        pass

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
