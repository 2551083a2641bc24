"""Typed statuses (issue 12, point 5): ingest, batch and gold outcomes are StrEnums, and what the meta tables
store is the same plain string the literals were (so existing lakes and SQL over them are unaffected)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from govlake.jobs.ingest.bronze import ingest
from govlake.jobs.pipeline import run_pending
from govlake.status import BatchStatus, GoldStatus, IngestStatus
from govlake.tables import CONFORM_BATCHES, INGEST_BATCHES
from tests.conftest import write_csv
from tests.factories import ric_number
from tests.jobs.gold.test_integrate import HUKOU


def test_outcomes_are_enums_and_stored_as_their_plain_values(ctx, tmp_path: Path) -> None:
    rows = [[ric_number(seq=f"{i:03d}"), "张三", "男", "1990-03-07", "440106", f"地址{i}", "2020-01-02"] for i in range(20)]
    good = write_csv(tmp_path / "hukou.csv", HUKOU, rows)
    bad = tmp_path / "empty.csv"
    bad.write_bytes(b"")
    first = ingest(ctx, [good, bad], "gaj", "hukou_population")
    again = ingest(ctx, [good], "gaj", "hukou_population")
    assert [r.status for r in first + again] == [IngestStatus.INGESTED, IngestStatus.REFUSED, IngestStatus.DUPLICATE]
    assert all(type(r.status) is IngestStatus for r in first + again)

    with ctx.engine() as engine:
        report = run_pending(ctx, engine)
    assert report.gold and all(type(g.status) is GoldStatus for g in report.gold)

    for table, allowed in ((INGEST_BATCHES, IngestStatus), (CONFORM_BATCHES, BatchStatus)):
        stored = ctx.lake.read(table.layer, table.name)
        assert stored.schema.field("status").type == pa.string()
        values = set(stored.column("status").to_pylist())
        assert values and values <= {m.value for m in allowed}
        assert all(type(v) is str for v in values)  # plain strings come back, not enum reprs
    assert set(ctx.lake.read(INGEST_BATCHES.layer, INGEST_BATCHES.name).column("status").to_pylist()) == {"ingested", "refused"}
