"""Conform: pending bronze batches -> silver.<dataset> and quarantine.<dataset>.

One pass of the engine standardizes, types and checks every row (rules compiled from the contract).
Failing rows go to quarantine with every rule they failed; passing rows are de-duplicated by business key
(the latest delivery wins; within a file the last row wins) and MERGEd into silver with pseudonymized PII.
Per batch the books balance: bronze rows = silver rows written + quarantined + superseded repeats, and
the figures are kept in ``meta.conform_batches``. Each run touches only batches not yet conformed.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from govlake.context import Context
from govlake.engine.base import Engine, sql_str
from govlake.jobs.ingest.bronze import BATCHES
from govlake.lake import writer_properties
from govlake.jobs.conform.rules import RAW_KEEP, CompiledContract, redact_text, ri_view
from govlake.jobs.quality.suites import Check, Suite, silver_suite
from govlake.jobs.quality.validate import (
    BatchAudit,
    Outcome,
    add_fatal_row_outcomes,
    batch_log,
    batch_rule_outcomes,
    excuse,
    waived,
    write_results,
)
from govlake.security import pseudonym_key

ACCOUNTING = "conform_batches"


@dataclass
class ConformResult:
    dataset: str
    batches: list[str] = field(default_factory=list)
    bronze_rows: int = 0
    silver_rows: int = 0
    quarantined: int = 0
    superseded: int = 0
    warned: int = 0
    resolved: int = 0
    held: list[str] = field(default_factory=list)
    outcomes: list[dict] = field(default_factory=list)  # the validation record of this run (meta.validation_results)

    @property
    def balanced(self) -> bool:
        return self.bronze_rows == self.silver_rows + self.quarantined + self.superseded


def pending_batches(ctx: Context, dataset: str) -> list[str]:
    """Ingested batches of the dataset that have not been conformed yet, in delivery order."""
    if not ctx.lake.exists("meta", BATCHES):
        return []
    done: set[str] = set()
    if ctx.lake.exists("meta", ACCOUNTING):
        done = set(ctx.lake.read("meta", ACCOUNTING, columns=["batch_id"], filter_sql=f"dataset = {sql_str(dataset)}")
                   .column("batch_id").to_pylist())
    t = ctx.lake.read("meta", BATCHES, columns=["batch_id", "ingested_at"],
                      filter_sql=f"status = 'ingested' AND dataset = {sql_str(dataset)}")
    rows = sorted(t.to_pylist(), key=lambda r: r["ingested_at"])
    return [r["batch_id"] for r in rows if r["batch_id"] not in done]


def conform(ctx: Context, engine: Engine, dataset: str, *, rules: bool = True, run_id: str | None = None) -> ConformResult:
    """Conform the pending batches of one dataset. ``rules=False`` skips every expectation (typing and
    pseudonymization still happen): only the quality benchmark uses it, as the baseline.

    The run is an OpenLineage job ``conform.<dataset>``: bronze in (with the data-quality assertions of this
    run), silver and quarantine out (with their column lineage), plus the meta tables it appends to."""
    from govlake.lineage_events import DatasetRef

    batches = pending_batches(ctx, dataset)
    if not batches:
        return ConformResult(dataset=dataset)
    lin = ctx.lineage
    bronze = DatasetRef("bronze", dataset)
    silver, quarantine = lin.table("silver", dataset), lin.table("quarantine", dataset)
    outputs = [silver, quarantine, DatasetRef("meta", ACCOUNTING), DatasetRef("meta", "validation_results")]
    with lin.run(f"conform.{dataset}", [bronze], outputs, engine=engine.name,
                 description=f"标准化、校验与假名化：bronze.{dataset} → silver.{dataset} / quarantine.{dataset}") as ol:
        result = _conform(ctx, engine, dataset, batches, rules, run_id)
        silver.rows, quarantine.rows = result.silver_rows, result.quarantined
        bronze.assertions = assertions(result.outcomes)
        ol.output("meta", ACCOUNTING).rows = len(batches)
    return result


def assertions(outcomes: list[dict]) -> list[dict]:
    """One OpenLineage assertion per rule over this run's batches: names and counts, never values."""
    by_rule: dict[str, dict] = {}
    for o in outcomes:
        a = by_rule.setdefault(o["rule"], {"assertion": o["expectation_type"], "name": o["rule"], "column": o["column"],
                                           "severity": o["severity"], "description": o["description"], "success": True,
                                           "_n": 0, "_bad": 0})
        a["success"] = a["success"] and bool(o["success"])
        a["_n"] += o["element_count"] or 0
        a["_bad"] += o["unexpected_count"] or 0
    return [{k: v for k, v in a.items() if not k.startswith("_")} | {"actual": f"{a['_bad']} / {a['_n']} 行未通过"}
            for a in by_rule.values()]


def _conform(ctx: Context, engine: Engine, dataset: str, batches: list[str], rules: bool, run_id: str | None) -> ConformResult:
    contract = ctx.contract(dataset)
    result = ConformResult(dataset=dataset)
    result.batches = batches
    d = engine.dialect
    suite = silver_suite(ctx, dataset) if rules else Suite(f"silver.{dataset}", (), "")
    in_batches = f"_batch_id IN ({', '.join(sql_str(b) for b in batches)})"
    engine.register_delta("bronze_src", "bronze", dataset)
    engine.execute(f"CREATE OR REPLACE TEMP VIEW pending AS SELECT * FROM bronze_src WHERE {in_batches}")
    suite, unchecked = register_references(ctx, engine, suite)
    cc = CompiledContract(contract, ctx.registry, d, pseudonym_key(ctx.settings), suite)
    batch_key = hashlib.sha256("|".join(batches).encode()).hexdigest()[:16]
    run_id = run_id or batch_key
    commit = ctx.lake.commit(job="conform", run_id=run_id, batches=batches)

    # Write, audit, publish. Batch rules (from the ingest log) are judged before the pass; fatal row rules
    # are counted while the rows stream, and if a batch fails one the stream is aborted before the Delta
    # commit (nothing published), the batch is held and the pass re-runs with it held.
    audit = batch_rule_outcomes(ctx, suite, dataset, batches)
    excused = waived(ctx, dataset)
    excuse(audit, excused)
    held = audit.held()

    # Keys delivered more than once in these batches: only their rows need ranking. The stream carries a
    # 64-bit hash of each row's key, looked up in Arrow: as a join in the engine, every slice rebuilt it
    # (0.3 s per 500k-row slice at 10 million rows). A hash collision only sends a row through the ranking,
    # where it wins alone; a repeated key always matches.
    raw_key = dup_key_text([cc.std(contract.field(k), d.ident(k)) for k in contract.key])
    dup_hashes = engine.fetch(f"SELECT {d.hash64('_dk')} AS h FROM (SELECT {raw_key} AS _dk FROM pending) x "
                              f"GROUP BY _dk HAVING count(*) > 1").column("h")
    std_key = d.hash64(dup_key_text([f"s__{k}" for k in contract.key]))

    fatal = BatchAudit({b: [] for b in batches})  # the fatal row rules, as judged by the last gate

    def gate(split: StreamSplit) -> dict[str, list[str]]:
        """Batches that must be held now that every row has been counted (and were not already)."""
        fatal.outcomes = {b: [] for b in batches}
        add_fatal_row_outcomes(fatal, suite, {b: c["bronze_rows"] for b, c in split.counts.items()}, split.rule_totals())
        excuse(fatal, excused)
        return {b: r for b, r in fatal.held().items() if b not in held}

    while True:
        held_flag = f"CASE WHEN _batch_id IN ({', '.join(map(sql_str, held))}) THEN 1 ELSE 0 END" if held else "0"
        failures = "_failures"
        if held:
            whens = " ".join(f"WHEN _batch_id = {sql_str(b)} THEN {d.array([sql_str('batch:' + r) for r in rules_])}"
                             for b, rules_ in held.items())
            failures = d.array_concat("_failures", f"CASE {whens} ELSE {d.array([])} END")
        quarantine_cols = [f"CASE WHEN _nfail > 0 THEN {e} END AS _q_{n}" for e, n in cc.quarantine_exprs(failures)] \
            if rules else []
        stream_sql = cc.silver_select(
            f"(SELECT *, {d.array_len('_failures')} + {held_flag} AS _nfail, {std_key} AS _dk "
            f"FROM ({cc.conform_sql('pending', raw=rules)}) c) r",
            extra=["_nfail", "_dk", "_failures", "_fatal", *quarantine_cols],
        )
        split = StreamSplit(engine, stream_sql, cc, dup_hashes, gate if rules else None)
        try:
            if ctx.lake.exists("silver", dataset):
                engine.lake.merge("silver", dataset, split.reader(), cc.key_columns(),
                                  update_if="s._ingested_at >= t._ingested_at", commit=commit, private=cc.private_columns())
            else:
                engine.lake.overwrite("silver", dataset, split.reader(), commit=commit, private=cc.private_columns(),
                                      description=f"{contract.title}（标准层：类型化、标准化、个人信息假名化，每个业务主键一行）")
            break
        except Exception:
            if not split.newly_held:
                raise
            held.update(split.newly_held)  # nothing was committed: run the pass again with these batches held
    for b in batches:
        audit.outcomes[b] += fatal.outcomes.get(b, [])
    result.held = sorted(held)

    # Quarantine: the failing rows as the pass set them aside; replaces an earlier attempt's rows.
    if split.quarantine_rows or (rules and not ctx.lake.exists("quarantine", dataset)):
        write_quarantine(ctx, dataset, split.quarantine_table(), in_batches, commit, contract.title, cc.private_columns())
    result.resolved = resolve_quarantine(ctx, engine, cc, dataset, batches)

    # The validation record and the books, per batch; written last so a crash re-runs the batches idempotently.
    now = datetime.now(timezone.utc)
    rows = [dict(batch_id=b, bronze_rows=0, silver_rows=0, quarantined=0, superseded=0, warned=0, repeats=0,
                 status="held" if b in held else "published", held_by=json.dumps(held.get(b, []), ensure_ascii=False))
            for b in batches]
    by_id = {r["batch_id"]: r for r in rows}
    for bid, counts in split.counts.items():
        for k, v in counts.items():
            by_id[bid][k] += v
    acc = pa.Table.from_pylist(
        [{**r, "dataset": dataset, "run_id": run_id, "engine": engine.name, "conformed_at": now} for r in rows],
        schema=ACCOUNTING_SCHEMA,
    )
    if rules:
        nodes = {r["batch_id"]: r["node"] for r in batch_log(ctx, dataset)}
        outcomes = row_outcomes(cc, split, batches, unchecked)
        results = [o.row(run_id=run_id, layer="silver", suite=suite.name, dataset=dataset, batch_id=b, node=nodes.get(b))
                   for b in batches for o in outcomes.get(b, []) + audit.outcomes.get(b, [])]
        result.outcomes = results
        write_results(ctx, results, replace=f"dataset = {sql_str(dataset)} AND layer = 'silver' AND "
                                             f"{in_batches.replace('_batch_id', 'batch_id')}")
    ctx.lake.append("meta", ACCOUNTING, acc, commit=ctx.lake.commit(f"govlake-conform-{dataset}-{batch_key}"))
    for r in rows:
        result.bronze_rows += r["bronze_rows"]
        result.silver_rows += r["silver_rows"]
        result.quarantined += r["quarantined"]
        result.superseded += r["superseded"]
        result.warned += r["warned"]
    for view in ("pending", "bronze_src", *(ri_view(c) for c in suite.row_checks()
                                                       if c.type == "expect_column_values_to_exist_in_dataset")):
        engine.drop(view)
    return result


def register_references(ctx: Context, engine: Engine, suite: Suite) -> tuple[Suite, list[Check]]:
    """Register the referenced keys of every existence check; checks whose referenced data is not in
    silver yet are left out of this run (returned, so the record says they were not evaluated)."""
    keep, unchecked = [], []
    for c in suite.checks:
        if c.type != "expect_column_values_to_exist_in_dataset":
            keep.append(c)
            continue
        parts = []
        for ref in c.kwargs["datasets"]:
            ds, col = ref.split(".", 1)
            if not ctx.lake.exists("silver", ds):
                continue
            f = ctx.contract(ds).field(col)
            column = f"{col}_pid" if f.hidden else col
            view = f"ref_{ds}"
            engine.register_delta(view, "silver", ds)
            parts.append(f"SELECT CAST({engine.dialect.ident(column)} AS {engine.dialect.varchar()}) AS v FROM {view}")
        if not parts:
            unchecked.append(c)
            continue
        engine.materialize(ri_view(c), " UNION ".join(parts))
        keep.append(c)
    return Suite(suite.name, tuple(keep), suite.digest), unchecked


def row_outcomes(cc: CompiledContract, split: "StreamSplit", batches: list[str], unchecked: list[Check]) -> dict[str, list]:
    """Per batch, the outcome of every error and warn row rule (counts gathered while the rows streamed)."""
    counts = split.rule_totals()
    out: dict[str, list] = {}
    for b in batches:
        n = split.counts.get(b, {}).get("bronze_rows", 0)
        lst = []
        for ck in cc.suite.row_checks(("error", "warn")):
            lst.append(Outcome(ck, n, counts.get((b, ck.rule), 0)))
        for ck in unchecked:
            lst.append(Outcome(ck, n, 0, "引用的数据集尚无标准层数据，本次未校验", evaluated=False))
        out[b] = lst
    return out


def write_quarantine(ctx: Context, dataset: str, table: pa.Table, in_batches: str, commit: object, title: str,
                     private: list[str] = ()) -> None:
    """Replace the quarantined rows of these batches (an earlier attempt's rows go) in one transaction."""
    exists = ctx.lake.exists("quarantine", dataset)
    ctx.lake.overwrite("quarantine", dataset, table, predicate=in_batches if exists else None, commit=commit,
                       private=private, description=f"{title}（隔离区：未通过校验的行及其全部失败规则）")


QUARANTINE_KEEP = ("_batch_id", "_node", "_row_number", "_ingested_at")
SLICE_ROWS = 1_000_000  # rows pulled from the engine at a time (bounds memory)


def dup_key_text(parts: list[str]) -> str:
    """One text per business key, from the standardized text of its fields (NULL parts as '', which
    standardization never produces)."""
    if len(parts) == 1:
        return parts[0]
    return "concat_ws(chr(31), " + ", ".join(f"coalesce({p}, '')" for p in parts) + ")"


def slice_filters(batches: list[tuple[str, int]], size: int) -> list[str]:
    """Filters cutting the pending rows into slices of at most ``size`` rows: small batches share a slice,
    a large one is cut by row number. (Cutting by row number alone made slices of ``size`` rows per
    batch: five 1-million-row deliveries gave 2.5-million-row slices.)"""
    out: list[str] = []
    group: list[str] = []
    total = 0
    for batch, rows in batches:
        if rows > size:
            out += [f"_batch_id = {sql_str(batch)} AND _row_number >= {lo} AND _row_number < {lo + size}"
                    for lo in range(1, rows + 1, size)]
            continue
        if group and total + rows > size:
            out.append(f"_batch_id IN ({', '.join(map(sql_str, group))})")
            group, total = [], 0
        group.append(batch)
        total += rows
    if group:
        out.append(f"_batch_id IN ({', '.join(map(sql_str, group))})")
    return out

ACCOUNTING_SCHEMA = pa.schema([
    ("batch_id", pa.string()), ("bronze_rows", pa.int64()), ("silver_rows", pa.int64()), ("quarantined", pa.int64()),
    ("superseded", pa.int64()), ("warned", pa.int64()), ("repeats", pa.int64()), ("status", pa.string()), ("held_by", pa.string()),
    ("dataset", pa.string()), ("run_id", pa.string()), ("engine", pa.string()),
    ("conformed_at", pa.timestamp("us", tz="UTC")),
])


class BatchesHeld(Exception):
    """Raised inside the silver stream to abort its Delta commit when a batch fails a fatal rule."""


class StreamSplit:
    """Splits the one conform stream: valid rows flow on to silver, failing rows and rows of repeated keys
    are set aside (they are few) and the repeated keys' winners are appended at the end of the stream, so
    silver gets exactly one row per key in a single transaction. Counts are kept per batch as rows pass.
    """

    def __init__(self, engine: Engine, sql: str, cc: CompiledContract, dup_hashes: pa.ChunkedArray,
                 gate: Callable[["StreamSplit"], dict[str, list[str]]] | None = None) -> None:
        self.engine = engine
        self.sql = sql
        self.cc = cc
        self.dup_hashes = np.unique(dup_hashes.to_numpy())  # sorted hashes of the keys delivered more than once
        self.gate = gate
        self.newly_held: dict[str, list[str]] = {}
        self.counts: dict[str, dict[str, int]] = {}
        self._failed: list[pa.RecordBatch] = []
        self._dups: list[pa.RecordBatch] = []
        self._flag_counts: Counter[tuple[str, str]] = Counter()
        self.schema: pa.Schema | None = None

    def _count(self, batch_ids: pa.Array, field: str) -> None:
        if len(batch_ids) == 0:
            return
        vc = pc.value_counts(batch_ids)
        for item in vc.to_pylist():
            c = self.counts.setdefault(item["values"], dict(bronze_rows=0, silver_rows=0, quarantined=0, superseded=0, warned=0, repeats=0))
            c[field] += item["counts"]

    def _batches(self):
        schema = self.engine.fetch(f"SELECT * FROM ({self.sql}) s LIMIT 0").schema
        out_schema = pa.schema([f for f in schema if f.name not in ("_nfail", "_dk", "_failures", "_fatal")
                                and not f.name.startswith("_q_")])
        self.schema = out_schema
        self.q_schema = pa.schema([f for f in schema if f.name.startswith("_q_") or f.name in QUARANTINE_KEEP])
        yield out_schema
        sizes = self.engine.fetch("SELECT _batch_id AS b, max(_row_number) AS n FROM pending GROUP BY _batch_id "
                                  "ORDER BY _batch_id").to_pylist()
        for b in self.engine.sliced(self.sql, slice_filters([(r["b"], r["n"] or 0) for r in sizes], SLICE_ROWS)):
            # Filters copy every column they keep: each takes only the columns it needs, and the passing
            # rows (nearly all) are filtered once.
            self._count(b.column("_batch_id"), "bronze_rows")
            for col in ("_fatal", "_warnings"):  # per-rule counts over every row of the batch
                flagged = b.select(["_batch_id", col]).filter(pc.greater(pc.list_value_length(b.column(col)), 0))
                self._flag_counts.update(_flat_counts(flagged.column("_batch_id"), flagged.column(col)))
            failed = pc.greater(b.column("_nfail"), 0)
            repeated = self._repeated(b.column("_dk"))
            dup = pc.and_not(repeated, failed)
            if pc.any(failed).as_py():
                bad = b.select(self.q_schema.names).filter(failed)
                self._failed.append(bad)
                self._count(bad.column("_batch_id"), "quarantined")
            set_aside = pc.or_(failed, repeated)
            b = b.select(out_schema.names)
            if pc.any(dup).as_py():
                self._dups.append(b.filter(dup))  # only what silver keeps
            if pc.any(set_aside).as_py():
                b = b.filter(pc.invert(set_aside))
            self._count(b.column("_batch_id"), "silver_rows")
            warned = pc.greater(pc.list_value_length(b.column("_warnings")), 0)
            self._count(b.column("_batch_id").filter(warned), "warned")
            yield b
        if self._dups:
            winners = self._rank_dups(pa.Table.from_batches(self._dups))
            self._count(winners.column("_batch_id"), "silver_rows")
            for b in winners.to_batches():
                yield b.select(out_schema.names)
        if self.gate is not None:
            self.newly_held = self.gate(self)
            if self.newly_held:  # abort before the consumer can commit: nothing of this pass is published
                raise BatchesHeld(sorted(self.newly_held))

    def _repeated(self, key_hashes: pa.Array) -> pa.Array:
        """TRUE where the row's key hash is one of the repeated keys' (a sorted-array lookup)."""
        h = key_hashes.to_numpy(zero_copy_only=False)
        if not len(self.dup_hashes):
            return pa.array(np.zeros(len(h), dtype=bool))
        pos = np.minimum(np.searchsorted(self.dup_hashes, h), len(self.dup_hashes) - 1)
        return pa.array(self.dup_hashes[pos] == h)

    def _rank_dups(self, dups: pa.Table) -> pa.Table:
        """Latest delivery first, then the last row of the file; the losers are counted as superseded."""
        import duckdb

        keys = ", ".join(self.cc.key_columns())
        con = duckdb.connect()
        con.register("dups", dups)
        ranked = con.execute(
            f"SELECT *, row_number() OVER (PARTITION BY {keys} ORDER BY _ingested_at DESC, _batch_id DESC, "
            f"_row_number DESC) AS _r, row_number() OVER (PARTITION BY {keys}, _batch_id ORDER BY _row_number DESC) AS _rb "
            f"FROM dups"
        ).to_arrow_table()
        con.close()
        win = pc.equal(ranked.column("_r"), 1)
        self._count(ranked.filter(pc.invert(win)).column("_batch_id"), "superseded")
        # Of those, repeats of a key inside one delivery (a uniqueness defect, unlike a later update).
        self._count(ranked.filter(pc.greater(ranked.column("_rb"), 1)).column("_batch_id"), "repeats")
        return ranked.filter(win).drop_columns(["_r", "_rb"])

    def reader(self) -> pa.RecordBatchReader:
        gen = self._batches()
        schema = next(gen)
        return pa.RecordBatchReader.from_batches(schema, gen)

    @property
    def quarantine_rows(self) -> int:
        return sum(b.num_rows for b in self._failed)

    def quarantine_table(self) -> pa.Table:
        """The failing rows in the quarantine table's layout: fields, failures, key, record, provenance."""
        t = pa.Table.from_batches(self._failed, schema=self.q_schema)
        cols, names = [], []
        for e, n in self.cc.quarantine_exprs():
            col = t.column(f"_q_{n}")
            cols.append(redact_extra(col) if n == "_extra" else col)
            names.append(n)
        for n in ("_batch_id", "_node", "_row_number", "_ingested_at"):
            cols.append(t.column(n))
            names.append(n)
        cols += [pa.array(["open"] * t.num_rows, pa.string()), pa.nulls(t.num_rows, pa.string())]
        names += ["_status", "_resolved_by"]
        return pa.Table.from_arrays(cols, names=names)

    def rule_totals(self) -> Counter[tuple[str, str]]:
        """(batch, rule) -> rows failing the rule (error, warn and untwinned fatal rules)."""
        out = Counter(self._flag_counts)
        if self._failed:
            t = pa.Table.from_batches(self._failed, schema=self.q_schema)
            out.update(_flat_counts(t.column("_batch_id"), t.column("_q__failures")))
        return out


def redact_extra(column: pa.ChunkedArray) -> pa.Array:
    """Unmapped columns (``_extra``, JSON {header: value}) are unclassified, so personal until a contract says
    otherwise (an 经办人 column holds a name): quarantine keeps every header and only the shape of its value."""
    out = []
    for text in column.to_pylist():
        if text is None:
            out.append(None)
            continue
        try:
            extra = json.loads(text)
        except ValueError:
            out.append(redact_text(text, RAW_KEEP))
            continue
        if not isinstance(extra, dict):
            out.append(redact_text(text, RAW_KEEP))
            continue
        shaped = {str(k): redact_text(v if isinstance(v, str) or v is None else json.dumps(v, ensure_ascii=False))
                  for k, v in extra.items()}
        out.append(json.dumps(shaped, ensure_ascii=False))
    return pa.array(out, pa.string())


def _flat_counts(batch_ids: pa.ChunkedArray, lists: pa.ChunkedArray) -> Counter[tuple[str, str]]:
    if len(batch_ids) == 0:
        return Counter()
    lists = lists.combine_chunks() if isinstance(lists, pa.ChunkedArray) else lists
    ids = batch_ids.combine_chunks() if isinstance(batch_ids, pa.ChunkedArray) else batch_ids
    flat = pa.table({"b": pc.take(ids, pc.list_parent_indices(lists)), "r": pc.list_flatten(lists)})
    g = flat.group_by(["b", "r"]).aggregate([("r", "count")])
    return Counter({(b, r): n for b, r, n in zip(g.column("b").to_pylist(), g.column("r").to_pylist(),
                                                   g.column("r_count").to_pylist())})


def resolve_quarantine(ctx: Context, engine: Engine, cc: CompiledContract, dataset: str,
                       batches: list[str] | None = None) -> int:
    """Mark open quarantine rows resolved when a later valid row for the same key reached silver.

    Only rows that reached silver from ``batches`` (this run) can resolve anything: a row that was already in
    silver had its chance when it arrived.

    This is how a steward's corrected re-delivery "leaves quarantine": the rows stay (nothing is lost) with
    ``_status = 'resolved'`` and the batch that fixed them.
    """
    q = ctx.lake.table("quarantine", dataset)
    if q is None:
        return 0
    engine.register_delta("q_src", "quarantine", dataset)
    if not engine.scalar("SELECT count(*) FROM q_src WHERE _status = 'open'"):
        engine.drop("q_src")
        return 0
    engine.register_delta("s_now", "silver", dataset)
    only = f"WHERE _batch_id IN ({', '.join(map(sql_str, batches))})" if batches else ""
    later = "(q._ingested_at < f._ingested_at OR (q._batch_id = f._batch_id AND q._row_number < f._row_number))"
    src = engine.fetch(
        f"SELECT q._key, q._batch_id, q._row_number, f._batch_id AS _fixed_by "
        f"FROM (SELECT * FROM q_src WHERE _status = 'open' AND _key IS NOT NULL) q "
        f"JOIN (SELECT {cc.key_text('silver')} AS _key, _batch_id, _row_number, _ingested_at FROM s_now {only}) f "
        f"ON q._key = f._key WHERE {later}"
    )
    engine.drop("q_src")
    engine.drop("s_now")
    if not src.num_rows:
        return 0
    dt = ctx.lake.table("quarantine", dataset)
    match = "t._batch_id = s._batch_id AND t._row_number = s._row_number"
    (dt.merge(src, predicate=match, source_alias="s", target_alias="t", writer_properties=writer_properties(cc.private_columns()),
              commit_properties=ctx.lake.commit(job="conform", action="resolve_quarantine"))
       .when_matched_update({"_status": "'resolved'", "_resolved_by": "s._fixed_by"})
       .execute())
    return src.num_rows
