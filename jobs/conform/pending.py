"""Which bronze batches wait for conform: ingested (``meta.ingest_batches``) and not yet in the books
(``meta.conform_batches``).

Its own module, apart from the conform job (``silver.py``), because it is also ``govlake run``'s and the
Airflow branch's "nothing to do" check: asking it imports no engine, no pyarrow and no rules.
"""

from __future__ import annotations

from typing import Any

from govlake.sqltext import sql_str
from govlake.tables import CONFORM_BATCHES, INGEST_BATCHES


def pending_batches(ctx: Any, dataset: str) -> list[str]:
    """Ingested batches of the dataset that have not been conformed yet, in delivery order."""
    return pending_by_dataset(ctx, dataset).get(dataset, [])


def pending_by_dataset(ctx: Any, dataset: str | None = None) -> dict[str, list[str]]:
    """:func:`pending_batches` of every dataset that has any (or of ``dataset`` only), from one read of each
    batch log: ``govlake run`` asks this once per run instead of twice per dataset."""
    only = f"dataset = {sql_str(dataset)}" if dataset else None
    done = {(r["dataset"], r["batch_id"]) for r in ctx.lake.rows(*CONFORM_BATCHES.ref, ["dataset", "batch_id"], only)}
    ingested = ctx.lake.rows(*INGEST_BATCHES.ref, ["dataset", "batch_id", "ingested_at"],
                             "status = 'ingested'" + (f" AND {only}" if only else ""))
    out: dict[str, list[str]] = {}
    for r in sorted(ingested, key=lambda r: r["ingested_at"]):
        if (r["dataset"], r["batch_id"]) not in done:
            out.setdefault(r["dataset"], []).append(r["batch_id"])
    return out
