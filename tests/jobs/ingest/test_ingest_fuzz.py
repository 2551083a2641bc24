"""Fuzz ingest with hostile files (issue 11, points 8-11 and 15): every file of every supported format is
accepted whole or refused cleanly - never a traceback, never a half-written bronze table.

The corpus (tests/jobs/ingest/hostile.py) is 70-odd hand-made files, one or more for each class of failure found
in the issue (huge header fields, BOMs on the wrong encoding, lone surrogates, bad bytes past the first
batch, deep JSON, zip bombs, billion laughs, XXE, corrupt sheets and pages, nested Parquet columns ...),
plus 160 seeded random mutations (byte flips, truncations, inserted BOMs / NULs / surrogates / huge fields)
of valid deliveries in CSV UTF-8 and GB18030, XLSX, JSON Lines and Parquet. All files go in-process
through ``ingest_file`` into one shared lake; a handful also go through the real ``govlake ingest``.

For each file: no traceback and no "Exception ignored" on stderr; the result is ``ingested`` or
``refused``; ``meta.ingest_batches`` has its row (status, rows, reason); bronze is unchanged on refusal
(same Delta version, same row count) and grows by exactly the file's rows on acceptance (the hand-made
cases also know how many data rows the file holds); no refusal message quotes a delivered value.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from govlake.context import Context
from govlake.jobs.ingest.bronze import ingest_file
from tests.conftest import PROJECT
from tests.jobs.ingest import hostile

pytestmark = pytest.mark.slow

CASES = hostile.corpus(mutations=160)
ID_NUMBER = re.compile(r"\d{17}[\dX]|测试\d")  # the corpus's ID numbers and names


def test_corpus_is_large_and_covers_every_format() -> None:
    assert len(CASES) >= 220
    assert {c.ext for c in CASES} == {"csv", "xlsx", "jsonl", "parquet"}
    assert len({c.name for c in CASES}) == len(CASES)
    seeds = {c.name.split("-")[1] for c in CASES if c.name.startswith("mut")}
    kinds = {c.name.split("-")[2] for c in CASES if c.name.startswith("mut")}
    assert seeds == set(hostile.seeds()) and kinds == set(hostile.MUTATIONS)


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Context, Path]]:
    """One lake for the whole corpus (bronze grows file after file, as in production)."""
    root = tmp_path_factory.mktemp("fuzz")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GOVLAKE_PROJECT", str(PROJECT))
        mp.setenv("GOVLAKE_PSEUDONYM_KEY", "test-key-not-secret")
        yield Context.from_env(str(root / "lake")), root


def bronze_state(ctx: Context) -> tuple[int | None, int]:
    """(Delta version, row count) of bronze, from a fresh handle on its log (not the job's cached one)."""
    if not ctx.lake.exists("bronze", hostile.DATASET):
        return None, 0
    dt = DeltaTable(ctx.lake.uri("bronze", hostile.DATASET))
    adds = pa.table(dt.get_add_actions(flatten=True))
    return dt.version(), int(pc.sum(adds["num_records"]).as_py() or 0) if adds.num_rows else 0


def batch_log(ctx: Context, batch_id: str, path: Path) -> list[dict]:
    """The batch-log rows of this file (two files with equal content share a batch id)."""
    ds = DeltaTable(ctx.lake.uri("meta", "ingest_batches")).to_pyarrow_dataset()
    t = ds.to_table(columns=["batch_id", "status", "rows", "message", "source_file"],
                    filter=(pc.field("batch_id") == batch_id) & (pc.field("source_file") == str(path)))
    return t.to_pylist()


def row_numbers(ctx: Context, batch_id: str) -> list[int]:
    ds = DeltaTable(ctx.lake.uri("bronze", hostile.DATASET)).to_pyarrow_dataset()
    return ds.to_table(columns=["_row_number"], filter=pc.field("_batch_id") == batch_id)["_row_number"].to_pylist()


def check_outcome(case: hostile.Case, status: str, rows: int) -> None:
    assert status in ("ingested", "refused"), status
    if case.expect == "refused":
        assert status == "refused", f"{case.name} should be refused"
    elif case.expect == "accepted":
        assert status == "ingested", f"{case.name} should be accepted"
        if case.rows is not None:
            assert rows == case.rows


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_file_is_accepted_whole_or_refused_cleanly(case: hostile.Case, lake, capfd) -> None:
    ctx, root = lake
    path = case.write(root)
    before = bronze_state(ctx)
    try:
        r = ingest_file(ctx, path, hostile.NODE, hostile.DATASET)
    finally:
        if case.streams:
            path.unlink()  # the large ones
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Exception ignored" not in err, err[-2000:]
    check_outcome(case, r.status, r.rows)

    [log] = batch_log(ctx, r.batch_id, path)
    assert log["status"] == r.status
    after = bronze_state(ctx)
    if r.status == "refused":
        assert after == before, "a refused file changed bronze"
        assert log["rows"] == 0 and log["message"]
        assert path.name in r.message and "处理建议" in r.message
        assert not ID_NUMBER.search(r.message), r.message  # names file / row / column, never a value
    else:
        assert log["rows"] == r.rows
        assert after[1] - before[1] == r.rows
        if case.expect == "accepted" and case.ext != "jsonl":  # (JSON Lines rows are numbered by line)
            assert sorted(row_numbers(ctx, r.batch_id)) == list(range(1, r.rows + 1))


CLI_CASES = ["csv_header_field_200k", "csv_utf8_bom_on_gb18030", "csv_headerless", "csv_header_only_no_newline",
             "jsonl_nested_100k", "xlsx_billion_laughs", "parquet_struct_column", "parquet_bad_utf8_second_row_group"]


def _govlake() -> list[str]:
    script = Path(sys.executable).with_name("govlake")
    return [str(script)] if script.exists() else [sys.executable, "-m", "govlake.cli"]


@pytest.mark.parametrize("name", CLI_CASES)
def test_hostile_file_through_the_cli(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real command: exit 0 or 4, a Chinese message, no traceback, no delivered value on stderr."""
    [case] = [c for c in CASES if c.name == name]
    path = case.write(tmp_path)
    lake_dir = tmp_path / "lake"
    env = {**os.environ, "GOVLAKE_PROJECT": str(PROJECT), "GOVLAKE_PSEUDONYM_KEY": "test-key-not-secret",
           "GOVLAKE_LAKE": str(lake_dir)}
    proc = subprocess.run([*_govlake(), "ingest", str(path), "--node", hostile.NODE, "--dataset", hostile.DATASET],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out and "Exception ignored" not in out, out[-2000:]
    assert proc.returncode == (4 if case.expect == "refused" else 0), out[-2000:]
    if proc.returncode == 4:
        assert "拒收" in proc.stderr and "处理建议" in proc.stderr
        assert not ID_NUMBER.search(proc.stderr), proc.stderr
    monkeypatch.setenv("GOVLAKE_PROJECT", str(PROJECT))
    monkeypatch.setenv("GOVLAKE_PSEUDONYM_KEY", "test-key-not-secret")
    ctx = Context.from_env(str(lake_dir))
    if proc.returncode == 4:
        assert bronze_state(ctx) == (None, 0)  # the aborted write committed nothing
    log = ctx.lake.read("meta", "ingest_batches").to_pylist()
    assert [x["status"] for x in log] == ["refused" if proc.returncode == 4 else "ingested"]
