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
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from govlake.context import Context
from govlake.contracts import Contract
from govlake.engine.base import Engine, Piece, Staged, sql_str
from govlake.jobs.conform.pending import pending_batches  # noqa: F401  (also imported from here)
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
from govlake.status import BatchStatus
from govlake.tables import CONFORM_BATCHES, QUARANTINE, SILVER, VALIDATION_RESULTS
from govlake.redaction import scrub



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
    outputs = [silver, quarantine, DatasetRef(*CONFORM_BATCHES.ref), DatasetRef(*VALIDATION_RESULTS.ref)]
    with lin.run(f"conform.{dataset}", [bronze], outputs, engine=engine.name,
                 description=f"标准化、校验与假名化：bronze.{dataset} → silver.{dataset} / quarantine.{dataset}") as ol:
        result = _conform(ctx, engine, dataset, batches, rules, run_id)
        silver.rows, quarantine.rows = result.silver_rows, result.quarantined
        bronze.assertions = assertions(result.outcomes)
        ol.output(*CONFORM_BATCHES.ref).rows = len(batches)
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


@dataclass
class ConformRun:
    """What every step of one conform run shares (fixed before the first row is read)."""

    dataset: str
    contract: Contract
    batches: list[str]
    rules: bool
    run_id: str
    batch_key: str
    in_batches: str
    suite: Suite
    unchecked: list[Check]
    cc: CompiledContract
    commit: Any
    excused: Any


def _conform(ctx: Context, engine: Engine, dataset: str, batches: list[str], rules: bool, run_id: str | None) -> ConformResult:
    run = prepare(ctx, engine, dataset, batches, rules, run_id)
    audit = batch_rule_outcomes(ctx, run.suite, dataset, batches)  # batch rules (from the ingest log), judged first
    excuse(audit, run.excused)
    held = audit.held()
    split, fatal = write_silver(ctx, engine, run, held)
    for b in batches:
        audit.outcomes[b] += fatal.outcomes.get(b, [])
    # Quarantine: the failing rows as the pass set them aside; replaces an earlier attempt's rows.
    if split.quarantine_rows or (rules and not ctx.lake.exists("quarantine", dataset)):
        write_quarantine(ctx, dataset, split.quarantine_table(), run.in_batches, run.commit, run.contract.title,
                         run.cc.private_columns())
    resolved = resolve_quarantine(ctx, engine, run.cc, dataset, batches)
    outcomes = run_outcomes(ctx, run, split, audit) if rules else []
    rows = write_books(ctx, engine, run, split, held, outcomes)
    result = ConformResult(dataset=dataset, batches=batches, held=sorted(held), resolved=resolved, outcomes=outcomes)
    for field_ in ("bronze_rows", "silver_rows", "quarantined", "superseded", "warned"):
        setattr(result, field_, sum(r[field_] for r in rows))
    drop_views(engine, run.suite)
    return result


def prepare(ctx: Context, engine: Engine, dataset: str, batches: list[str], rules: bool, run_id: str | None) -> ConformRun:
    """Register the pending bronze rows and the referenced keys, compile the contract with this run's suite."""
    contract = ctx.contract(dataset)
    suite = silver_suite(ctx, dataset) if rules else Suite(f"silver.{dataset}", (), "")
    in_batches = f"_batch_id IN ({', '.join(sql_str(b) for b in batches)})"
    engine.register_delta("bronze_src", "bronze", dataset)
    engine.execute(f"CREATE OR REPLACE TEMP VIEW pending AS SELECT * FROM bronze_src WHERE {in_batches}")
    suite, unchecked = register_references(ctx, engine, suite)
    cc = CompiledContract(contract, ctx.registry, engine.dialect, pseudonym_key(ctx.settings), suite)
    batch_key = hashlib.sha256("|".join(batches).encode()).hexdigest()[:16]
    run_id = run_id or batch_key
    return ConformRun(dataset=dataset, contract=contract, batches=batches, rules=rules, run_id=run_id,
                      batch_key=batch_key, in_batches=in_batches, suite=suite, unchecked=unchecked, cc=cc,
                      commit=ctx.lake.commit(job="conform", run_id=run_id, batches=batches),
                      excused=waived(ctx, dataset))


def write_silver(ctx: Context, engine: Engine, run: ConformRun, held: dict[str, list[str]]) -> tuple["SplitResult", BatchAudit]:
    """Write, audit, publish. The pass is staged (files written, nothing committed), the fatal row rules are
    judged on its counts, and it is published, or, when a batch failed one, discarded and staged again with
    that batch held (its rows then go to quarantine). ``held`` is updated in place."""
    dup_hashes = repeated_key_hashes(engine, run)
    merge = ctx.lake.exists("silver", run.dataset)
    while True:
        staged, split = stage_silver(engine, run, dup_hashes, held, merge)
        fatal = judge_fatal(run, split)
        newly = {b: r for b, r in fatal.held().items() if b not in held}
        if not newly:
            break
        engine.discard(staged)
        held.update(newly)
    engine.add_rows(staged, split.winners)
    engine.publish(staged, keys=run.cc.key_columns(), update_if="s._ingested_at >= t._ingested_at", commit=run.commit,
                   description=SILVER.description(run.contract.title))
    return split, fatal


def repeated_key_hashes(engine: Engine, run: ConformRun) -> pa.ChunkedArray:
    """64-bit hashes of the keys delivered more than once in the pending batches: only their rows need ranking.

    The stream carries each row's key hash, looked up in Arrow: as a join in the engine, every slice rebuilt
    it (0.3 s per 500k-row slice at 10 million rows). A hash collision only sends a row through the ranking,
    where it wins alone; a repeated key always matches."""
    d, cc = engine.dialect, run.cc
    parts = []
    for k in run.contract.key:
        std = cc.std(run.contract.field(k), d.ident(k))
        parts.append(key_part(d, std, cc.typed(run.contract.field(k), std)))
    raw_key = dup_key_text(parts)
    return engine.fetch(f"SELECT {d.hash64('_dk')} AS h FROM (SELECT {raw_key} AS _dk FROM pending) x "
                        f"GROUP BY _dk HAVING count(*) > 1").column("h")


def stream_sql(engine: Engine, run: ConformRun, held: dict[str, list[str]]) -> str:
    """The one conform pass over the pending rows: silver's columns plus what the split needs (failure
    count, key hash, rule lists, the quarantine layout for failing rows). Held batches' rows fail."""
    d, cc = engine.dialect, run.cc
    held_flag = f"CASE WHEN _batch_id IN ({', '.join(map(sql_str, held))}) THEN 1 ELSE 0 END" if held else "0"
    failures = "_failures"
    if held:
        whens = " ".join(f"WHEN _batch_id = {sql_str(b)} THEN {d.array([sql_str('batch:' + r) for r in rules_])}"
                         for b, rules_ in held.items())
        failures = d.array_concat("_failures", f"CASE {whens} ELSE {d.array([])} END")
    quarantine_cols = cc.quarantine_pass("_nfail > 0", failures) if run.rules else []
    std_key = d.hash64(dup_key_text([key_part(d, f"s__{k}", f"t__{k}") for k in run.contract.key]))
    return cc.silver_select(
        f"(SELECT *, {d.array_len('_failures')} + {held_flag} AS _nfail, {std_key} AS _dk "
        f"FROM ({cc.conform_sql('pending', raw=run.rules)}) c) r",
        extra=["_nfail", "_dk", "_failures", "_fatal", *quarantine_cols],
    )


def stage_silver(engine: Engine, run: ConformRun, dup_hashes: pa.ChunkedArray, held: dict[str, list[str]],
                 merge: bool) -> tuple[Staged, "SplitResult"]:
    """One pass, staged: the engine runs it, the split sorts every batch where it is computed, the silver
    rows become data files and the rest comes back to this process (few rows)."""
    sql = stream_sql(engine, run, held)
    split = RowSplit.for_stream(engine.fetch(f"SELECT * FROM ({sql}) s LIMIT 0").schema, dup_hashes)
    staged = engine.stage("silver", run.dataset, sql, split, schema=split.out_schema, side_schemas=split.side_schemas(),
                          private=run.cc.private_columns(), slices=pending_slices(engine), merge=merge)
    return staged, SplitResult(engine, run.cc, split, staged.sides)


def pending_slices(engine: Engine) -> list[str]:
    sizes = engine.fetch("SELECT _batch_id AS b, max(_row_number) AS n FROM pending GROUP BY _batch_id "
                         "ORDER BY _batch_id").to_pylist()
    return slice_filters([(r["b"], r["n"] or 0) for r in sizes], SLICE_ROWS)


def judge_fatal(run: ConformRun, split: "SplitResult") -> BatchAudit:
    """The fatal row rules, judged on the counts of a whole pass (nothing is published before this)."""
    fatal = BatchAudit({b: [] for b in run.batches})
    if run.rules:
        add_fatal_row_outcomes(fatal, run.suite, {b: c["bronze_rows"] for b, c in split.counts.items()},
                               split.rule_totals())
        excuse(fatal, run.excused)
    return fatal


def write_books(ctx: Context, engine: Engine, run: ConformRun, split: "SplitResult", held: dict[str, list[str]],
                outcomes: list[dict]) -> list[dict]:
    """The validation record and the books, per batch; written last so a crash re-runs the batches idempotently."""
    now = datetime.now(timezone.utc)
    rows = [dict(batch_id=b, bronze_rows=0, silver_rows=0, quarantined=0, superseded=0, warned=0, repeats=0,
                 status=BatchStatus.HELD if b in held else BatchStatus.PUBLISHED, held_by=json.dumps(held.get(b, []), ensure_ascii=False))
            for b in run.batches]
    by_id = {r["batch_id"]: r for r in rows}
    for bid, counts in split.counts.items():
        for k, v in counts.items():
            by_id[bid][k] += v
    acc = pa.Table.from_pylist(
        [{**r, "dataset": run.dataset, "run_id": run.run_id, "engine": engine.name, "conformed_at": now} for r in rows],
        schema=CONFORM_BATCHES.schema,
    )
    if run.rules:
        write_results(ctx, outcomes, replace=f"dataset = {sql_str(run.dataset)} AND layer = 'silver' AND "
                              f"{run.in_batches.replace('_batch_id', 'batch_id')}")
    ctx.lake.append(*CONFORM_BATCHES.ref, acc, commit=ctx.lake.commit(f"govlake-conform-{run.dataset}-{run.batch_key}"))
    return rows


def run_outcomes(ctx: Context, run: ConformRun, split: "SplitResult", audit: BatchAudit) -> list[dict]:
    """This run's validation record (meta.validation_results rows): row rules, then batch and fatal rules."""
    nodes = {r["batch_id"]: r["node"] for r in batch_log(ctx, run.dataset)}
    outcomes = row_outcomes(run.cc, split, run.batches, run.unchecked)
    return [o.row(run_id=run.run_id, layer="silver", suite=run.suite.name, dataset=run.dataset, batch_id=b,
                  node=nodes.get(b))
            for b in run.batches for o in outcomes.get(b, []) + audit.outcomes.get(b, [])]


def drop_views(engine: Engine, suite: Suite) -> None:
    for view in ("pending", "bronze_src", *(ri_view(c) for c in suite.row_checks()
                                            if c.type == "expect_column_values_to_exist_in_dataset")):
        engine.drop(view)


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


def row_outcomes(cc: CompiledContract, split: "SplitResult", batches: list[str], unchecked: list[Check]) -> dict[str, list]:
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
                       private=private, description=QUARANTINE.description(title))


QUARANTINE_KEEP = ("_batch_id", "_node", "_row_number", "_ingested_at")
SLICE_ROWS = 1_000_000  # rows pulled from the engine at a time (bounds memory)


def key_part(d, std: str, typed: str) -> str:
    """A key field as the canonical text MERGE compares: the typed value where it reads (2021/3/5 and
    2021-03-05 are one date, so one key), else the standardized text. Ranking repeats by the delivered
    spelling let two spellings of one key reach the MERGE together, which refused the whole run."""
    return f"coalesce(CAST({typed} AS {d.varchar()}), {std})"


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



STREAM_ONLY = ("_nfail", "_dk", "_failures", "_fatal")  # columns of the pass that silver does not keep
COUNTS_SCHEMA = pa.schema([("batch_id", pa.string()), ("field", pa.string()), ("n", pa.int64())])
FLAGS_SCHEMA = pa.schema([("batch_id", pa.string()), ("rule", pa.string()), ("n", pa.int64())])
COUNT_FIELDS = ("bronze_rows", "silver_rows", "quarantined", "superseded", "warned", "repeats")


@dataclass
class RowSplit:
    """Splits each batch of the conform pass: valid rows go on to silver; failing rows (for quarantine) and
    rows of repeated keys (ranked later, on the driver) are set aside as side outputs, with the counts per
    batch. A pure function of the batch, so the engine runs it wherever it computes the pass (this
    process, or Spark's executors). Filters copy every column they keep: each takes only the columns it
    needs, and the passing rows (nearly all) are filtered once."""

    dup_hashes: np.ndarray  # sorted hashes of the keys delivered more than once
    out_schema: pa.Schema
    q_schema: pa.Schema

    @classmethod
    def for_stream(cls, schema: pa.Schema, dup_hashes: pa.ChunkedArray) -> "RowSplit":
        out = pa.schema([f for f in schema if f.name not in STREAM_ONLY and not f.name.startswith("_q_")])
        q = pa.schema([f for f in schema if f.name.startswith("_q_") or f.name in QUARANTINE_KEEP])
        return cls(np.unique(dup_hashes.to_numpy()), out, q)

    def side_schemas(self) -> dict[str, pa.Schema]:
        return {"quarantine": self.q_schema, "repeats": self.out_schema, "counts": COUNTS_SCHEMA, "flags": FLAGS_SCHEMA}

    def __call__(self, b: pa.RecordBatch) -> Piece:
        counts: list[dict] = []
        _tally(counts, b.column("_batch_id"), "bronze_rows")
        flags: Counter[tuple[str, str]] = Counter()
        for col in ("_fatal", "_warnings"):  # per-rule counts over every row of the batch
            flagged = b.select(["_batch_id", col]).filter(pc.greater(pc.list_value_length(b.column(col)), 0))
            flags.update(_flat_counts(flagged.column("_batch_id"), flagged.column(col)))
        failed = pc.greater(b.column("_nfail"), 0)
        repeated = self._repeated(b.column("_dk"))
        sides: dict[str, pa.RecordBatch] = {}
        if pc.any(failed).as_py():
            sides["quarantine"] = b.select(self.q_schema.names).filter(failed)
            _tally(counts, sides["quarantine"].column("_batch_id"), "quarantined")
        rows = b.select(self.out_schema.names)
        dup = pc.and_not(repeated, failed)
        if pc.any(dup).as_py():
            sides["repeats"] = rows.filter(dup)  # only what silver keeps
        set_aside = pc.or_(failed, repeated)
        if pc.any(set_aside).as_py():
            rows = rows.filter(pc.invert(set_aside))
        _tally(counts, rows.column("_batch_id"), "silver_rows")
        warned = pc.greater(pc.list_value_length(rows.column("_warnings")), 0)
        _tally(counts, rows.column("_batch_id").filter(warned), "warned")
        sides["counts"] = pa.RecordBatch.from_pylist(counts, schema=COUNTS_SCHEMA)
        sides["flags"] = pa.RecordBatch.from_pylist([{"batch_id": bid, "rule": r, "n": n} for (bid, r), n in flags.items()],
                                                    schema=FLAGS_SCHEMA)
        return Piece(rows, sides)

    def _repeated(self, key_hashes: pa.Array) -> pa.Array:
        """TRUE where the row's key hash is one of the repeated keys' (a sorted-array lookup)."""
        h = key_hashes.to_numpy(zero_copy_only=False)
        if not len(self.dup_hashes):
            return pa.array(np.zeros(len(h), dtype=bool))
        pos = np.minimum(np.searchsorted(self.dup_hashes, h), len(self.dup_hashes) - 1)
        return pa.array(self.dup_hashes[pos] == h)


def _tally(into: list[dict], batch_ids: pa.Array, what: str) -> None:
    if len(batch_ids):
        into += [{"batch_id": v["values"], "field": what, "n": v["counts"]} for v in pc.value_counts(batch_ids).to_pylist()]


class SplitResult:
    """What one staged pass set aside, as this process sees it: the counts per batch, the per-rule counts,
    the failing rows, and the repeated keys' winners (latest delivery, then last row of the file), which
    complete silver's one row per key."""

    def __init__(self, engine: Engine, cc: CompiledContract, split: RowSplit, sides: dict[str, pa.Table]) -> None:
        self.cc = cc
        self.q_schema = split.q_schema
        self.counts: dict[str, dict[str, int]] = {}
        for r in sides["counts"].to_pylist():
            self._add(r["batch_id"], r["field"], r["n"])
        self._flag_counts: Counter[tuple[str, str]] = Counter()
        for r in sides["flags"].to_pylist():
            self._flag_counts[(r["batch_id"], r["rule"])] += r["n"]
        self._failed = sides["quarantine"]
        self.winners = self._rank_repeats(engine, cc, sides["repeats"])

    def _add(self, batch_id: str, what: str, n: int) -> None:
        self.counts.setdefault(batch_id, dict.fromkeys(COUNT_FIELDS, 0))[what] += n

    def _count(self, batch_ids: pa.ChunkedArray, what: str) -> None:
        for v in pc.value_counts(batch_ids.combine_chunks()).to_pylist() if len(batch_ids) else []:
            self._add(v["values"], what, v["counts"])

    def _rank_repeats(self, engine: Engine, cc: CompiledContract, dups: pa.Table) -> pa.Table:
        """Latest delivery first, then the last row of the file; the losers are counted as superseded."""
        if not dups.num_rows:
            return dups
        keys = ", ".join(engine.dialect.ident(k) for k in cc.key_columns())
        engine.register_arrow("_repeats", dups)
        try:
            ranked = engine.fetch(
                f"SELECT *, row_number() OVER (PARTITION BY {keys} ORDER BY _ingested_at DESC, _batch_id DESC, "
                f"_row_number DESC) AS _r, row_number() OVER (PARTITION BY {keys}, _batch_id ORDER BY _row_number DESC) "
                f"AS _rb FROM _repeats")
        finally:
            engine.drop("_repeats")
        win = pc.equal(ranked.column("_r"), 1)
        self._count(ranked.filter(pc.invert(win)).column("_batch_id"), "superseded")
        # Of those, repeats of a key inside one delivery (a uniqueness defect, unlike a later update).
        self._count(ranked.filter(pc.greater(ranked.column("_rb"), 1)).column("_batch_id"), "repeats")
        winners = ranked.filter(win).select(dups.schema.names).cast(dups.schema)
        self._count(winners.column("_batch_id"), "silver_rows")
        return winners

    @property
    def quarantine_rows(self) -> int:
        return self._failed.num_rows

    def quarantine_table(self) -> pa.Table:
        """The failing rows in the quarantine table's layout: fields, failures, key, record, provenance."""
        t = self._failed
        cols, names = [], []
        for n, col in self.cc.quarantine_columns(t):
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
        if self._failed.num_rows:
            out.update(_flat_counts(self._failed.column("_batch_id"), self._failed.column("_q__failures")))
        return out


def redact_extra(column: pa.ChunkedArray) -> pa.Array:
    """Unmapped columns (``_extra``, JSON {header: value}) are unclassified, so personal until a contract says
    otherwise (an 经办人 column holds a name): quarantine keeps every header (redacted) and only the shape of
    its value."""
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
        shaped: dict[str, str | None] = {}
        for k, v in extra.items():
            key = scrub(str(k))  # a delivered header is unclassified text too (经办人 张三丰 4401…)
            while key in shaped:
                key += "'"
            shaped[key] = redact_text(v if isinstance(v, str) or v is None else json.dumps(v, ensure_ascii=False))
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
    ctx.lake.update_matched("quarantine", dataset, src, ["_batch_id", "_row_number"],
                            {"_status": "'resolved'", "_resolved_by": "s._fixed_by"},
                            commit=ctx.lake.commit(job="conform", action="resolve_quarantine"), private=cc.private_columns())
    return src.num_rows
