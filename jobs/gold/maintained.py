"""Keyed gold models maintained from what changed (a model that declares ``maintain``).

A build recomputes only the keys of the source rows that arrived since the last build (the batches named in
the sources' conform commits after the recorded versions), evaluating the model's SQL over the sources
restricted to those keys, and upserts them (the engine's MERGE rewrites only the files holding those keys).

Under ``anonymize`` (k-anonymity by suppression) a row also depends on how many rows share its group; the
decisions are a function of the group counts alone (:func:`decisions`), so the counts are kept in each
build's commit metadata and updated by the changed rows (minus their rows at the recorded source versions,
plus their rows now). When an update flips a decision (a group crossing ``k``), the other rows the table holds
in that group are recomputed too; when it flips many, or the history cannot say which batches arrived (a
commit that is not a conform batch), the build is a full one: the same SQL over whole sources, the same decisions from fresh counts. Both paths produce the
table through the same join of rows and decisions, so they agree (``tests/jobs/test_incremental_equals_full.py``).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from govlake.context import Context
from govlake.engine.base import Engine, sql_str
from govlake.jobs.gold.published import GoldResult, last_build, new_batches, validate_table
from govlake.jobs.quality.suites import Suite
from govlake.jobs.quality.validate import write_results
from govlake.models import Anonymize, GoldModel
from govlake.status import GoldStatus

Group = tuple[Any, ...]
MAX_FLIPPED = 500  # groups whose decisions an update may flip before a full build is cheaper


def _lit(v: Any) -> str:
    return "NULL" if v is None else str(v) if isinstance(v, (int, float)) else sql_str(str(v))


def decisions(spec: Anonymize, counts: dict[Group, int]) -> dict[Group, tuple[bool, ...]]:
    """Per group (``spec.columns`` values as delivered), which ``suppress`` columns stay shown.

    Level i counts the rows sharing the groups, the values levels < i left and the raw values of the rest:
    exactly ``count(*) OVER (PARTITION BY ...)`` of a windowed SQL, summed over the groups that map together."""
    g = len(spec.groups)
    shown = {t: [True] * len(spec.suppress) for t in counts}

    def level_key(t: Group, i: int) -> Group:
        kept = tuple(v if shown[t][j] else None for j, v in enumerate(t[g:g + i]))
        return (*t[:g], *kept, *t[g + i:])

    for i in range(len(spec.suppress)):
        sizes: Counter[Group] = Counter()
        for t, n in counts.items():
            sizes[level_key(t, i)] += n
        for t in counts:
            if sizes[level_key(t, i)] < spec.k:
                shown[t][i] = False
    return {t: tuple(v) for t, v in shown.items()}


def build(ctx: Context, engine: Engine, model: GoldModel, suite: Suite | None, run_id: str | None,
          full: bool = False) -> GoldResult:
    from govlake.lineage_events import DatasetRef

    versions: dict[str, int] = {}
    for ref in model.sources:
        dt = ctx.lake.table(*ref.split(".", 1))
        if dt is None:
            missing = [s for s in model.sources if not ctx.lake.exists(*s.split(".", 1))]
            return GoldResult(model.table, GoldStatus.WAITING, message=f"上游尚无数据：{'、'.join(missing)}")
        versions[ref] = dt.version()
    prior = last_build(ctx, model.table)
    if not full and prior and prior.get("sources") == versions:
        return GoldResult(model.table, GoldStatus.UNCHANGED, message="上游未变化，跳过")
    out = ctx.lineage.table("gold", model.table)
    with ctx.lineage.run(f"gold.{model.table}", [DatasetRef(*r.split(".", 1)) for r in model.sources], [out],
                         engine=engine.name, description=f"{model.title}：{model.description}"):
        try:
            result = Build(ctx, engine, model, suite, run_id, versions, None if full else prior).run()
        finally:
            for view in ("__keys", "__rows", "__rows_old", "__decide", "__candidate",
                         *(r.replace(".", "__") for r in model.sources)):
                engine.drop(view)
        out.rows = result.rows if result.status == GoldStatus.BUILT else 0
    return result


class Build:
    def __init__(self, ctx: Context, engine: Engine, model: GoldModel, suite: Suite | None, run_id: str | None,
                 versions: dict[str, int], prior: dict | None) -> None:
        self.ctx, self.engine, self.model, self.suite, self.run_id = ctx, engine, model, suite, run_id
        self.versions, self.prior = versions, prior
        self.spec = model.anonymize

    def run(self) -> GoldResult:
        batches = self.new_batches()
        if batches is not None:
            result = self.incremental(batches)
            if result is not None:
                return result
        return self.full()

    # -- what changed ---------------------------------------------------------------------------------------
    def new_batches(self) -> dict[str, list[str]] | None:
        if self.spec and self.prior and "groups" not in self.prior:
            return None  # counts unknown: a full build computes them
        return new_batches(self.ctx, self.model.table, self.prior, self.versions)

    def register(self, keys: str | None, old: bool = False) -> None:
        """The sources as the model's SQL names them, at this build's (or the last build's) versions,
        restricted to the rows of the keys in relation ``keys``."""
        d = self.engine.dialect
        for ref in self.model.sources:
            view = ref.replace(".", "__")
            version = (self.prior["sources"][ref] if old else self.versions[ref])
            self.engine.register_delta(f"{view}__all", *ref.split(".", 1), version=version)
            where = ""
            if keys:
                col = d.ident(self.model.maintain.keys[ref])
                where = f" WHERE CAST({col} AS {d.varchar()}) IN (SELECT k FROM {keys})"
            self.engine.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM {view}__all{where}")

    def unregister(self) -> None:
        for ref in self.model.sources:
            view = ref.replace(".", "__")
            self.engine.drop(view)
            self.engine.drop(f"{view}__all")

    def counts(self, relation: str) -> Counter[Group]:
        if not self.spec:
            return Counter()
        d = self.engine.dialect
        cols = ", ".join(d.ident(c) for c in self.spec.columns)
        t = self.engine.fetch(f"SELECT {cols}, count(*) AS n FROM {relation} GROUP BY {cols}")
        return Counter({tuple(r[c] for c in self.spec.columns): r["n"] for r in t.to_pylist()})

    # -- the two builds -------------------------------------------------------------------------------------
    def incremental(self, batches: dict[str, list[str]]) -> GoldResult | None:
        e, d, key = self.engine, self.engine.dialect, self.model.key[0]
        parts = []
        for ref, bs in batches.items():
            if not bs:
                continue
            view = f"{ref.replace('.', '__')}__new"
            e.register_delta(view, *ref.split(".", 1), version=self.versions[ref])
            col = d.ident(self.model.maintain.keys[ref])
            parts.append(f"SELECT DISTINCT CAST({col} AS {d.varchar()}) AS k FROM {view} "
                         f"WHERE _batch_id IN ({', '.join(map(sql_str, bs))})")
        if not parts:
            parts.append(f"SELECT k FROM (SELECT CAST(NULL AS {d.varchar()}) AS k) z WHERE 1 = 0")
        e.materialize("__keys", " UNION ".join(parts))
        for ref in batches:
            e.drop(f"{ref.replace('.', '__')}__new")
        sql = self.model.compiled_sql(d.name)
        self.register("__keys")
        e.materialize("__rows", sql)
        self.unregister()
        self.register("__keys", old=True)
        e.materialize("__rows_old", sql)
        self.unregister()
        old_keys = e.scalar(f"SELECT count(*) FROM __rows_old o WHERE NOT EXISTS (SELECT 1 FROM __rows r WHERE "
                            f"r.{d.ident(key)} = o.{d.ident(key)})")
        if old_keys:
            return None  # a key left the model: a full build
        groups = None
        if self.spec:
            before = Counter({tuple(g[:-1]): g[-1] for g in self.prior["groups"]})
            groups = before - self.counts("__rows_old") + self.counts("__rows")  # Counter drops zero groups
            was, now = decisions(self.spec, before), decisions(self.spec, groups)
            flipped = [t for t in was.keys() & now.keys() if was[t] != now[t]]
            if len(flipped) > MAX_FLIPPED:
                return None
            if flipped:  # a group crossed k: its other members' rows change too; recompute them as well
                self.add_members(flipped, sql)
        candidate = self.apply("__rows", groups)
        return self.publish(candidate, groups, upsert=True)

    def add_members(self, flipped: list[Group], sql: str) -> None:
        """Add to ``__keys`` (and recompute ``__rows`` for) every key the published table may hold in a group
        whose decisions changed: its rows show the groups' values, and each suppressible value either as it
        is or blanked. A superset (a blanked value matches any group), small because few values are blanked."""
        e, d, key = self.engine, self.engine.dialect, self.model.key[0]
        e.register_delta("__published", "gold", self.model.table)
        g = len(self.spec.groups)
        ors = []
        for t in flipped:
            parts = [f"{d.ident(c)} IS NOT DISTINCT FROM {_lit(v)}" for c, v in zip(self.spec.groups, t[:g])]
            parts += [f"({d.ident(c)} IS NULL OR {d.ident(c)} = {_lit(v)})" if v is not None else f"{d.ident(c)} IS NULL"
                      for c, v in zip(self.spec.suppress, t[g:])]
            ors.append("(" + " AND ".join(parts) + ")")
        e.materialize("__keys_more", f"SELECT k FROM __keys UNION SELECT CAST({d.ident(key)} AS {d.varchar()}) AS k "
                                     f"FROM __published WHERE {' OR '.join(ors)}")
        e.drop("__published")
        self.register("__keys_more")
        e.materialize("__rows", sql)
        self.unregister()
        e.drop("__keys_more")

    def full(self) -> GoldResult:
        self.register(None)
        self.engine.materialize("__rows", self.model.compiled_sql(self.engine.dialect.name))
        self.unregister()
        groups = self.counts("__rows") if self.spec else None
        return self.publish(self.apply("__rows", groups), groups, upsert=False)

    def apply(self, rows: str, groups: Counter[Group] | None) -> str:
        """The model's rows with the suppression decisions applied (a join to the decision table)."""
        e, d = self.engine, self.engine.dialect
        names = [c.name for c in self.model.columns]
        if not self.spec:
            e.materialize("__candidate", f"SELECT {', '.join(d.ident(n) for n in names)} FROM {rows}")
            return "__candidate"
        import pyarrow as pa  # here: an unchanged model's build (every no-op govlake run) needs no pyarrow

        schema = e.fetch(f"SELECT {', '.join(d.ident(c) for c in self.spec.columns)} FROM {rows} LIMIT 0").schema
        decided = decisions(self.spec, groups or {})
        cols = {c: pa.array([t[i] for t in decided], schema.field(c).type) for i, c in enumerate(self.spec.columns)}
        for j, c in enumerate(self.spec.suppress):
            cols[f"__show_{c}"] = pa.array([v[j] for v in decided.values()], pa.bool_())
        e.register_arrow("__decide", pa.table(cols))
        on = " AND ".join(f"r.{d.ident(c)} IS NOT DISTINCT FROM g.{d.ident(c)}" for c in self.spec.columns)
        select = ", ".join(f"CASE WHEN g.{d.ident('__show_' + n)} THEN r.{d.ident(n)} END AS {d.ident(n)}"
                           if n in self.spec.suppress else f"r.{d.ident(n)}" for n in names)
        e.materialize("__candidate", f"SELECT {select} FROM {rows} r JOIN __decide g ON {on}")
        return "__candidate"

    def publish(self, candidate: str, groups: Counter[Group] | None, *, upsert: bool) -> GoldResult:
        """Write, audit, publish: the candidate rows pass the table's suite, then one commit that records
        the source versions (and the group counts)."""
        ctx, e, table = self.ctx, self.engine, self.model.table
        if self.suite is not None and self.suite.checks:
            outcomes = validate_table(e, self.suite, candidate)
            write_results(ctx, [o.row(run_id=self.run_id or "adhoc", layer="gold", suite=self.suite.name, dataset=table,
                                       batch_id=None, node=None) for o in outcomes], replace=None)
            blocking = [o.check.rule for o in outcomes if o.check.severity in ("error", "fatal") and not o.success]
            if blocking:
                return GoldResult(table, GoldStatus.BLOCKED, message=f"未通过金层校验（{'、'.join(blocking)}），保留上一版本")
        meta: dict[str, Any] = {"job": "integrate", "table": table, "sources": self.versions,
                                "mode": "incremental" if upsert else "full"}
        if groups is not None:
            meta["groups"] = [[*t, n] for t, n in sorted(groups.items(), key=lambda kv: json.dumps(kv[0], default=str))]
        description = f"{self.model.title}：{self.model.description}"
        if upsert:
            e.upsert("gold", table, f"SELECT * FROM {candidate}", list(self.model.key), commit=ctx.lake.commit(**meta),
                     description=description)
        else:
            e.write_delta("gold", table, f"SELECT * FROM {candidate}", mode="overwrite", commit=ctx.lake.commit(**meta),
                          description=description)
        return GoldResult(table, GoldStatus.BUILT, rows=ctx.lake.table("gold", table).count())
