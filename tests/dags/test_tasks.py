"""The Airflow-free task callables (govlake.jobs.tasks): landing discovery, refused files, run ids."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from govlake.errors import ConfigError
from govlake.jobs import tasks as jobs

from ..conftest import write_csv


def test_discover_lists_dataset_folders_and_flags_foreign_ones(govlake_env) -> None:
    landing = Path(govlake_env["GOVLAKE_LANDING"])
    own = landing / "gaj" / "hukou_population"
    own.mkdir(parents=True)
    for name in ("b__20261102__2.csv", "a__20261101__1.csv", "notes.txt", ".hidden.csv", "c.csv.part", "~$d.xlsx"):
        (own / name).write_text("x")
    (landing / "gaj" / "market_entities").mkdir()
    (landing / "gaj" / "market_entities" / "m.csv").write_text("x")
    (landing / "gaj" / "no_such_dataset").mkdir()
    (landing / "gaj" / "no_such_dataset" / "n.csv").write_text("x")
    (landing / "gaj" / "empty_dataset").mkdir()

    found = {d["dataset"]: d for d in jobs.discover("gaj")}
    assert set(found) == {"hukou_population", "market_entities", "no_such_dataset"}
    assert [Path(f).name for f in found["hukou_population"]["files"]] == ["a__20261101__1.csv", "b__20261102__2.csv", "notes.txt"]
    assert "problem" not in found["hukou_population"]
    assert "报送节点" in found["market_entities"]["problem"] and "未登记" in found["no_such_dataset"]["problem"]
    assert jobs.discover("lsj") == []  # no folder: nothing delivered


def test_refused_content_is_reported_but_not_logged_again(govlake_env, ctx) -> None:
    folder = Path(govlake_env["GOVLAKE_LANDING"]) / "gaj" / "hukou_population"
    folder.mkdir(parents=True)
    bad = write_csv(folder / "hukou_population__gaj__20261120__1.csv", ["备注", "数量"], [["无主键", "1"]])
    unsupported = folder / "hukou_population__gaj__20261120__2.xls"
    unsupported.write_bytes(b"\xd0\xcf\x11\xe0 not really excel")
    files = [str(bad.resolve()), str(unsupported.resolve())]

    first = jobs.ingest_delivery("gaj", "hukou_population", files)
    assert first["ingested"] == [] and [r["known"] for r in first["refused"]] == [False, False]
    assert "业务主键" in first["refused"][0]["message"] and "不支持的文件格式" in first["refused"][1]["message"]
    logged = ctx.lake.read("meta", "ingest_batches").num_rows

    second = jobs.ingest_delivery("gaj", "hukou_population", files)
    assert [r["known"] for r in second["refused"]] == [True, True]
    assert ctx.lake.read("meta", "ingest_batches").num_rows == logged  # nothing appended

    third = jobs.ingest_delivery("gaj", "hukou_population", files, retry_refused=True)  # e.g. after a contract change
    assert [r["known"] for r in third["refused"]] == [False, False]
    summary = jobs.summarize_deliveries([second, None])
    assert summary["refused"] == [] and len(summary["known_refused"]) == 2 and summary["files"] == 2


def test_foreign_dataset_is_refused_without_touching_the_lake(govlake_env, ctx) -> None:
    out = jobs.ingest_delivery("gaj", "market_entities", ["/x/m.csv"],
                               problem="节点 gaj 不是数据集 market_entities 的报送节点")
    assert out["refused"][0]["message"].startswith("节点 gaj") and not Path(ctx.settings.lake_root).exists()


def test_run_ids_are_sortable_and_stable_per_dag_run() -> None:
    when = datetime(2026, 11, 24, 10, 0, 5, tzinfo=timezone.utc)
    a = jobs.run_id_for("govlake_silver", "manual__1", when)
    assert a == jobs.run_id_for("govlake_silver", "manual__1", when) and a.startswith("20261124T100005Z-")
    assert a != jobs.run_id_for("govlake_silver", "manual__2", when)
    assert jobs.run_id_for("govlake_silver", "x", when.replace(hour=11)) > a


def test_locations_default_next_to_the_lake(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GOVLAKE_LAKE", str(tmp_path / "lake"))
    monkeypatch.delenv("GOVLAKE_LANDING", raising=False)
    monkeypatch.delenv("GOVLAKE_REPORTS", raising=False)
    assert jobs.lake_root() == str(tmp_path / "lake")
    assert jobs.landing_dir() == tmp_path / "landing"
    assert jobs.reports_dir() == tmp_path / "lake" / "_reports" / "quality"
    monkeypatch.delenv("GOVLAKE_LAKE")
    with pytest.raises(ConfigError, match="GOVLAKE_LAKE"):  # never the working directory of an Airflow process
        jobs.lake_root()
