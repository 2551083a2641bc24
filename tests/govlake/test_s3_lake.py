"""The same jobs on an S3 lake: a real S3 HTTP endpoint on 127.0.0.1 (moto's standalone server process)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from govlake.context import Context
from govlake.jobs.ingest.bronze import ingest
from govlake.jobs.pipeline import run_pending
from govlake.access.sql import SqlSession
from tests.jobs.gold.test_integrate import HUKOU
from tests.conftest import write_csv
from tests.factories import ric_number


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def moto_server(**env: str) -> Iterator[str]:
    """moto's standalone S3 server as its own process on a free loopback port (the real S3 HTTP API)."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **env})
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.2)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(autouse=True)
def control_db_outside_the_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An object-store lake keeps its control DB in the project (``.govlake/``): a test must not leave one in
    the repository (one was committed), so every process of these tests gets its own."""
    monkeypatch.setenv("GOVLAKE_CONTROL_DB", f"sqlite:///{tmp_path / 'control.db'}")


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.mark.slow
def test_ingest_conform_and_query_on_s3(s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    for k, v in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1",
                 "GOVLAKE_S3_ENDPOINT": s3_endpoint, "GOVLAKE_PSEUDONYM_KEY": "s3-test-key",
                 "GOVLAKE_PROJECT": str(Path(__file__).resolve().parents[2])}.items():
        monkeypatch.setenv(k, v)
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="citylake")
    ctx = Context.from_env("s3://citylake/govlake")
    f = write_csv(tmp_path / "h.csv", HUKOU, [
        [ric_number(seq="111"), "张三", "男", "1990-03-07", "440106", "地址1", "2020-01-02"],
        [ric_number(seq="222"), "李四", "女", "1991-04-08", "越秀区", "地址2", "2021/3/5"],
    ])
    [r] = ingest(ctx, [f], "gaj", "hukou_population")
    assert r.status == "ingested" and r.rows == 2
    with ctx.engine() as engine:
        report = run_pending(ctx, engine)
    assert report.balanced and report.conformed[0].silver_rows == 2
    keys = boto3.client("s3", endpoint_url=s3_endpoint).list_objects_v2(Bucket="citylake", Prefix="govlake/silver/")
    assert any(k["Key"].endswith(".parquet") for k in keys.get("Contents", []))
    s = SqlSession(ctx.lake, "steward")
    t = s.query("SELECT district_code, count(*) AS n FROM silver.hukou_population GROUP BY 1 ORDER BY 1").table
    assert t.to_pylist() == [{"district_code": "440104", "n": 1}, {"district_code": "440106", "n": 1}]
    s.close()


# -- issue 11, points 12 and 18: the whole pipeline, concurrent writers and bad settings on S3 ------------------

GOVLAKE = str(Path(sys.executable).parent / "govlake")


def s3_env(endpoint: str, **extra: str) -> dict[str, str]:
    import os

    return {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1",
            "GOVLAKE_S3_ENDPOINT": endpoint, "GOVLAKE_PSEUDONYM_KEY": "s3-test-key",
            "GOVLAKE_PROJECT": str(Path(__file__).resolve().parents[2]), "GOVLAKE_THREADS": "2", **extra}


def new_bucket(endpoint: str, name: str) -> str:
    import boto3

    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test",
                 region_name="us-east-1").create_bucket(Bucket=name)
    return f"s3://{name}/govlake"


def cli(env: dict[str, str], *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([GOVLAKE, *args], env=env, capture_output=True, text=True, timeout=timeout,
                          cwd=Path(__file__).resolve().parents[2])


@pytest.mark.slow
def test_the_whole_demo_runs_on_s3_and_builds_gold(s3_endpoint: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Every dataset of every node through ingest → silver → gold on an S3 lake (the production layout). Scoring
    used to die here on mixed string / string_view Parquet files, so gold was never built."""
    lake = new_bucket(s3_endpoint, "demolake")
    env = s3_env(s3_endpoint)
    done = cli(env, "demo", "--rows", "10000", "--lake", lake, "--landing", str(tmp_path / "landing"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert "账平" in done.stdout

    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "GOVLAKE_S3_ENDPOINT", "GOVLAKE_PSEUDONYM_KEY",
              "GOVLAKE_PROJECT"):
        monkeypatch.setenv(k, env[k])
    ctx = Context.from_env(lake)
    from govlake.models import load_models

    models = load_models(ctx.settings.schemas_dir)
    gold = set(ctx.lake.list_tables("gold"))
    assert set(models) <= gold, set(models) - gold  # every gold model was built
    assert {"quality_scores", "catalog_resources", "lineage_edges"} <= gold
    for name in models:
        assert ctx.lake.read("gold", name).num_rows > 0, name

    books = ctx.lake.read("meta", "conform_batches").to_pylist()
    assert books and all(b["bronze_rows"] == b["silver_rows"] + b["quarantined"] + b["superseded"] for b in books)
    for ds in ctx.lake.list_tables("bronze"):
        delivered = ctx.lake.read("bronze", ds, columns=["_batch_id"]).num_rows
        assert delivered == sum(b["bronze_rows"] for b in books if b["dataset"] == ds), ds
    scored = set(ctx.lake.read("gold", "quality_scores", columns=["run_id"]).column("run_id").to_pylist())
    assert scored == {b["run_id"] for b in books}

    again = cli(env, "run", "--lake", lake)  # idempotent on S3 too
    assert again.returncode == 0 and "没有待处理的批次" in again.stdout, again.stderr[-2000:]


@pytest.mark.slow
def test_two_ingests_of_one_file_at_once_land_it_once_on_s3(s3_endpoint: str, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer lease (conditional PUT) serializes writers on an object store as flock does on disk."""
    f = write_csv(tmp_path / "h.csv", HUKOU, [[ric_number(seq=f"{i:03d}"), "张三", "男", "1990-03-07", "440106",
                                               f"地址{i}", "2020-01-02"] for i in range(50)])
    env = s3_env(s3_endpoint)
    for trial in range(5):
        lake = new_bucket(s3_endpoint, f"race{trial}")
        args = [GOVLAKE, "ingest", str(f), "--node", "gaj", "--dataset", "hukou_population", "--lake", lake]
        procs = [subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        outs = [p.communicate(timeout=300) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outs
        stdout = "".join(o for o, _ in outs)
        assert stdout.count("已导入") == 1 and stdout.count("跳过") == 1, outs
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "GOVLAKE_S3_ENDPOINT", "GOVLAKE_PSEUDONYM_KEY"):
            monkeypatch.setenv(k, env[k])
        ctx = Context.from_env(lake)
        assert ctx.lake.read("bronze", "hukou_population", columns=["_batch_id"]).num_rows == 50
        assert ctx.lake.read("meta", "ingest_batches").num_rows == 1


def test_an_s3_lease_of_a_killed_holder_expires_and_is_taken_over(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from govlake.locking import LakeBusy

    lake = new_bucket(s3_endpoint, "leases")
    env = s3_env(s3_endpoint, GOVLAKE_LOCK_TTL="3")
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "GOVLAKE_S3_ENDPOINT", "GOVLAKE_PSEUDONYM_KEY",
              "GOVLAKE_PROJECT", "GOVLAKE_LOCK_TTL"):
        monkeypatch.setenv(k, env[k])
    code = (f"import time\nfrom govlake.context import Context\nctx = Context.from_env({lake!r})\n"
            "with ctx.lake.writer_lock('s3 holder'):\n    print('held', flush=True)\n    time.sleep(600)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        ctx = Context.from_env(lake)
        time.sleep(4)  # longer than the TTL: only the heartbeat keeps the lease alive
        with pytest.raises(LakeBusy, match="另一个 govlake 进程正在写入该湖") as busy:
            with ctx.lake.writer_lock("waiter", timeout=1):
                pass
        assert "s3 holder" in str(busy.value)
    finally:
        holder.kill()  # SIGKILL: the lease is never deleted, it stops being renewed
        holder.wait()
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    # what a writer killed mid-upload leaves: an unfinished multipart upload of a data file
    s3.create_multipart_upload(Bucket="leases", Key="govlake/bronze/hukou_population/part-00000-x.parquet")
    time.sleep(1.1)  # the store's clock has a one-second resolution
    started = time.monotonic()
    with ctx.lake.writer_lock("taker", timeout=30):
        taken = time.monotonic() - started
        assert s3.list_multipart_uploads(Bucket="leases", Prefix="govlake/").get("Uploads", []) == []
    assert taken < 15
    assert s3.list_objects_v2(Bucket="leases", Prefix="govlake/_locks/").get("KeyCount", 0) == 0  # released


@pytest.fixture(scope="module")
def s3_endpoint_with_auth() -> Iterator[str]:
    """A second moto server that checks credentials (moto accepts any by default)."""
    with moto_server(INITIAL_NO_AUTH_ACTION_COUNT="0") as url:
        yield url


@pytest.mark.slow
@pytest.mark.parametrize("case", ["wrong_port", "missing_bucket", "bad_credentials"])
def test_a_misconfigured_s3_lake_gets_a_clear_message_not_a_traceback(case: str, s3_endpoint: str, s3_endpoint_with_auth: str,
                                                                      tmp_path: Path) -> None:
    endpoint, lake, expected = {
        "wrong_port": (f"http://127.0.0.1:{_free_port()}", "s3://citylake/govlake", "无法连接对象存储"),
        "missing_bucket": (s3_endpoint, "s3://no-such-bucket/govlake", "不存在桶 no-such-bucket"),
        "bad_credentials": (s3_endpoint_with_auth, "s3://citylake/govlake", "对象存储拒绝了访问"),
    }[case]
    env = s3_env(endpoint)
    f = write_csv(tmp_path / "h.csv", HUKOU, [[ric_number(), "张三", "男", "1990-03-07", "440106", "地址", "2020-01-02"]])
    for args in (["ingest", str(f), "--node", "gaj", "--dataset", "hukou_population"], ["run"],
                 ["sql", "SELECT count(*) FROM gold.population"]):
        started = time.monotonic()
        done = cli(env, *args, "--lake", lake, timeout=120)
        assert done.returncode != 0, (args, done.stdout)
        assert "Traceback" not in done.stderr, (args, done.stderr[-2000:])
        assert expected in done.stderr and "处理建议" in done.stderr, (args, done.stderr[-2000:])
        assert time.monotonic() - started < 60  # no minutes of retries
