"""The same jobs on an S3 lake: a real S3 HTTP endpoint on 127.0.0.1 (moto's standalone server process)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from govlake.context import Context
from govlake.jobs.ingest import ingest
from govlake.jobs.pipeline import run_pending
from govlake.sqlaccess import SqlSession
from tests.jobs.test_integrate import HUKOU
from tests.conftest import write_csv
from tests.factories import ric_number


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


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
