"""Airflow as deployed: PostgreSQL as the metadata DB, the real scheduler with LocalExecutor, the API server
(execution API for the task processes) and the DAG processor, each a subprocess on loopback, with this
checkout's dags/ and a lake and landing folder of the test.

Deliveries made by ``govlake generate`` for a few nodes are ingested by triggering those nodes' ingestion
DAGs; from there only the Asset events drive the chain (ingest → govlake_silver → govlake_gold /
govlake_governance), as in production. The test waits until the deployment is idle and then checks that
every DAG run succeeded, that every gold table the deployed DAGs declare (and the deliveries can feed) was
produced through its Asset, and that the books balance per batch. infra/README.md ("Airflow on one host")
documents this set-up; test_pipeline_e2e.py covers the same chain task by task with ``dag.test()``.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from string import Template

import pytest

from .conftest import DAGS, PROJECT
from .postgres import Postgres, free_port, postgres_for_tests

pytestmark = [pytest.mark.airflow, pytest.mark.slow]

NODES = ("gaj", "lsj", "scjgj", "mzj", "440106")  # 公安, 来穗, 市场监管, 民政 and 天河区 (three datasets)
DATASETS = ("hukou_population", "migrant_population", "market_entities", "social_organizations",
            "grid_events", "hotline_tickets", "service_cases")
ROWS = 3000
CHAIN = ("govlake_silver", "govlake_gold", "govlake_governance")
TIMEOUT_S = 15 * 60
POLL_S = 5
BIN = Path(sys.executable).parent


@dataclass
class Deployment:
    """The running Airflow components and how to talk to them."""

    home: Path
    env: dict[str, str]
    pg: Postgres
    port: int
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def airflow(self, *args: str, timeout: int = 300) -> str:
        """Run one ``airflow`` CLI command against this deployment."""
        done = subprocess.run([str(BIN / "airflow"), *args], env=self.env, cwd=self.home, capture_output=True,
                              text=True, timeout=timeout)
        if done.returncode != 0:
            raise AssertionError(f"airflow {' '.join(args)} exited {done.returncode}:\n{done.stdout[-3000:]}\n"
                                 f"{done.stderr[-3000:]}")
        return done.stdout

    def start(self, name: str, *args: str) -> None:
        """Start a long-running component in its own process group (it forks workers and parsers)."""
        with open(self.home / f"{name}.log", "wb") as out:  # the child keeps its own descriptor
            self.procs[name] = subprocess.Popen([str(BIN / "airflow"), *args], env=self.env, cwd=self.home,
                                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self) -> None:
        for proc in self.procs.values():
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 45
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(proc, signal.SIGKILL)  # whatever of the group is left (task processes, workers)
            if proc.poll() is None:
                proc.wait(timeout=10)

    def exited(self) -> dict[str, int]:
        return {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}

    def rows(self, sql: str) -> list[list[str]]:
        """Query the metadata DB (psql: no Airflow import in the test process, whose Airflow is SQLite)."""
        return [line.split("|") for line in self.pg.psql(sql, "airflow").splitlines() if line]

    def logs(self, lines: int = 40) -> str:
        """Tails of the component logs and of every failed task's log."""
        parts = [f"== {n}.log ==\n{_tail(self.home / f'{n}.log', lines)}" for n in self.procs]
        failed = self.rows("SELECT dag_id, run_id, task_id, map_index FROM task_instance "
                           "WHERE state IN ('failed', 'upstream_failed', 'up_for_retry')")
        for dag_id, run_id, task_id, map_index in failed:
            where = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
            if map_index != "-1":
                where = where / f"map_index={map_index}"
            for log in sorted(where.glob("attempt=*.log")):
                parts.append(f"== task log {log.relative_to(self.home)} ==\n{_task_log_tail(log, lines)}")
        parts.append(f"== postgres ==\n{self.pg.log_tail(lines)}")
        return "\n".join(parts)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # the group this test started (start_new_session): by id, nothing else
    except (ProcessLookupError, PermissionError):
        pass


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(missing)"


def _task_log_tail(path: Path, lines: int) -> str:
    """A task log (JSON lines) as ``level event`` lines, with the exception of a failed attempt."""
    out = []
    for line in _tail(path, lines).splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            out.append(line)
            continue
        out.append(f"{rec.get('level', '')} {rec.get('event', '')}")
        for err in rec.get("error_detail") or []:
            frames = err.get("frames") or []
            where = f" at {frames[-1].get('filename')}:{frames[-1].get('lineno')}" if frames else ""
            out.append(f"    {err.get('exc_type')}: {err.get('exc_value')}{where}")
    return "\n".join(out)


SINGLE_HOST_ENV = PROJECT / "infra" / "airflow" / "single-host.env"


def single_host_settings(placeholders: dict[str, str]) -> dict[str, str]:
    """infra/airflow/single-host.env with its ``${...}`` placeholders filled in (as the shell would)."""
    settings = {}
    for line in SINGLE_HOST_ENV.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            settings[key.strip()] = Template(value.strip()).substitute(placeholders)
    return settings


def airflow_env(home: Path, pg: Postgres, port: int, govlake: dict[str, str]) -> dict[str, str]:
    """The environment of every component: the process environment without the DAG tests' SQLite Airflow,
    the documented one-host settings, and the provider's OpenLineage events to a file (as ``make airflow``)."""
    from cryptography.fernet import Fernet

    base = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    settings = single_host_settings({
        "AIRFLOW_DB_URL": pg.url("airflow"), "AIRFLOW_API_PORT": str(port),
        "AIRFLOW_JWT_SECRET": secrets.token_urlsafe(64), "AIRFLOW_FERNET_KEY": Fernet.generate_key().decode(),
        "GOVLAKE_PROJECT": govlake["GOVLAKE_PROJECT"]})
    return base | govlake | settings | {
        "PATH": f"{BIN}{os.pathsep}{base.get('PATH', '')}",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "govlake",
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(home / "openlineage" / "events.jsonl"), "append": True}),
    }


@pytest.fixture()
def postgres() -> Iterator[Postgres]:
    yield from postgres_for_tests()


@pytest.fixture()
def deployment(request: pytest.FixtureRequest, govlake_env: dict[str, str], tmp_path: Path) -> Iterator[Deployment]:
    """Metadata DB migrated, pool imported, API server, scheduler and DAG processor running; stopped after."""
    if find_spec("airflow") is None:  # Airflow itself runs in the subprocesses only
        pytest.skip("Airflow is not installed (pip install -e '.[airflow]')")
    if find_spec("psycopg") is None:  # the same extra: Airflow without its metadata DB driver is a broken install
        pytest.fail("psycopg is not installed: pip install -e '.[airflow]' (the driver of the metadata DB)")
    postgres: Postgres = request.getfixturevalue("postgres")  # started only once Airflow is known to be there
    home = tmp_path / "airflow"
    (home / "openlineage").mkdir(parents=True)
    port = free_port()
    govlake = govlake_env | {"GOVLAKE_PROJECT": str(PROJECT), "GOVLAKE_INGEST_SCHEDULE": "none",
                             "GOVLAKE_PSEUDONYM_KEY": os.environ["GOVLAKE_PSEUDONYM_KEY"], "GOVLAKE_THREADS": "1"}
    dep = Deployment(home=home, env=airflow_env(home, postgres, port, govlake), pg=postgres, port=port)
    assert dep.env["AIRFLOW__CORE__DAGS_FOLDER"] == str(DAGS)  # this checkout's DAGs are the ones deployed
    postgres.create_database("airflow")
    try:
        dep.airflow("db", "migrate", timeout=600)
        dep.airflow("pools", "import", str(PROJECT / "infra" / "airflow" / "pools.json"))
        dep.start("api-server", "api-server")  # host, port and workers from single-host.env
        dep.start("scheduler", "scheduler")
        dep.start("dag-processor", "dag-processor")
        _wait_healthy(dep)
        yield dep
    finally:
        dep.stop()


def _wait_healthy(dep: Deployment, timeout_s: int = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if dep.exited():
            pytest.fail(f"Airflow components exited: {dep.exited()}\n{dep.logs()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{dep.port}/api/v2/monitor/health", timeout=5) as r:
                health = json.load(r)
            if health["metadatabase"]["status"] == "healthy" and health["scheduler"]["status"] == "healthy":
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(2)
    pytest.fail(f"Airflow not healthy after {timeout_s} s\n{dep.logs()}")


def _wait_parsed(dep: Deployment, dag_ids: set[str], timeout_s: int = 300) -> None:
    """Until the DAG processor has serialized these DAGs (a trigger needs the serialized DAG)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        have = {r[0] for r in dep.rows("SELECT dag_id FROM serialized_dag")}
        if dag_ids <= have:
            return
        time.sleep(POLL_S)
    errors = dep.rows("SELECT filename, stacktrace FROM import_error")
    pytest.fail(f"DAGs not parsed: {sorted(dag_ids - have)}; import errors: {errors}\n{dep.logs()}")


def gold_outlets(dep: Deployment, lake_uri: str) -> set[str]:
    """Every gold table the deployed DAGs declare as a task outlet (as the DAG processor stored them)."""
    rows = dep.rows("SELECT DISTINCT a.uri FROM task_outlet_asset_reference r JOIN asset a ON a.id = r.asset_id")
    prefix = f"{lake_uri}/gold/"
    return {uri[len(prefix):] for [uri] in rows if uri.startswith(prefix)}


def buildable(declared: set[str], delivered: set[str]) -> set[str]:
    """The declared gold tables these deliveries can feed: a gold model waits while one of its sources does
    not exist (``integrate``), so a model is built when its silver sources were delivered and its gold
    sources are built. Tables that are not gold models (the governance outputs: 多源校核, scores, lineage,
    catalog, duties-data list, indicators) are built from any delivery."""
    from govlake.jobs import tasks

    lay = tasks.layout()
    built = declared - set(lay.gold_tables)
    for t in lay.gold_tables:  # dependency order
        if t in declared and set(lay.gold_sources[t]) <= delivered and set(lay.gold_after[t]) <= built:
            built.add(t)
    return built


def _wait_idle(dep: Deployment, ctx, expected: set[str]) -> float:
    """Poll until every expected gold table exists and no DAG run is queued, running or pending on Asset
    events; fail early on a failed run or a dead component. Returns the seconds waited."""
    start = time.monotonic()
    while True:
        waited = time.monotonic() - start
        if dep.exited():
            pytest.fail(f"Airflow components exited: {dep.exited()}\n{dep.logs()}")
        runs = dep.rows("SELECT dag_id, run_id, state FROM dag_run")
        failed = [r for r in runs if r[2] == "failed"]
        if failed:
            pytest.fail(f"DAG runs failed: {failed}\n{dep.logs()}")
        active = [r for r in runs if r[2] in ("queued", "running")]
        queued_events = dep.rows("SELECT count(*) FROM asset_dag_run_queue")[0][0]
        missing = {t for t in expected if not ctx.lake.exists("gold", t)}
        if not missing and not active and queued_events == "0" and {r[0] for r in runs} >= set(CHAIN):
            return waited
        if waited > TIMEOUT_S:
            pytest.fail(f"not done after {TIMEOUT_S} s: gold tables missing {sorted(missing)}, active runs "
                        f"{active}, queued Asset events {queued_events}\n{dep.logs()}")
        time.sleep(POLL_S)


def test_scheduler_on_postgres_runs_the_asset_chain(deployment: Deployment, govlake_env, ctx) -> None:
    t0 = time.monotonic()
    landing = Path(govlake_env["GOVLAKE_LANDING"])
    subprocess.run([str(BIN / "govlake"), "generate", "--rows", str(ROWS), "--seed", "12", "--out", str(landing),
                    *(a for d in DATASETS for a in ("--dataset", d))], env=deployment.env, check=True,
                   capture_output=True, timeout=300)
    manifest = json.loads((landing / "manifest.json").read_text(encoding="utf-8"))
    ours = [d for d in manifest["deliveries"] if d["node"] in NODES]
    delivered = {d["dataset"] for d in ours if d["expect"] == "ingest"}
    assert delivered == set(DATASETS)  # several nodes, every dataset: the test is as wide as intended

    ingest_dags = {f"govlake_ingest_{n}" for n in NODES}
    _wait_parsed(deployment, ingest_dags | set(CHAIN))
    lake_uri = Path(ctx.settings.lake_root).as_uri()
    expected = buildable(gold_outlets(deployment, lake_uri), delivered)
    assert {"population", "legal_entities", "district_profile", "quality_scores"} <= expected  # the set is real
    assert {"catalog_resources", "duty_data_list", "indicator_progress"} <= expected  # governance outputs too
    for dag_id in sorted(ingest_dags):  # only these nodes: the others' files stay in the landing, untouched
        deployment.airflow("dags", "trigger", dag_id)
    waited = _wait_idle(deployment, ctx, expected)

    # every run succeeded: one per triggered ingestion DAG, then Asset-triggered runs of the chain only
    runs = deployment.rows("SELECT dag_id, state, run_type FROM dag_run")
    assert {r[1] for r in runs} == {"success"}, runs
    assert sorted(r[0] for r in runs if r[0].startswith("govlake_ingest_")) == sorted(ingest_dags)
    assert {r[2] for r in runs if r[0] in CHAIN} == {"asset_triggered"}, runs
    bad = deployment.rows("SELECT dag_id, task_id, state FROM task_instance "
                          "WHERE state NOT IN ('success', 'skipped')")
    assert not bad, bad

    # every expected gold table was published through its Asset, by the DAG that declares it
    events = deployment.rows("SELECT a.uri, e.source_dag_id FROM asset_event e JOIN asset a ON a.id = e.asset_id")
    published = {uri.rsplit("/", 1)[1] for uri, _ in events if uri.startswith(f"{lake_uri}/gold/")}
    assert published == expected, sorted(published ^ expected)
    for t in expected - {"source_conflicts"}:  # conflicts may legitimately be none
        assert ctx.lake.read("gold", t).num_rows > 0, t
    bronze = {uri.rsplit("/", 1)[1] for uri, dag in events if uri.startswith(f"{lake_uri}/bronze/")}
    assert bronze == delivered

    # the books balance, for exactly the files the triggered nodes delivered
    batches = ctx.lake.read("meta", "ingest_batches").to_pylist()
    ingested = [b for b in batches if b["status"] == "ingested"]
    assert len(ingested) == sum(1 for d in ours if d["expect"] == "ingest")
    acc = ctx.lake.read("meta", "conform_batches").to_pylist()
    assert {a["batch_id"] for a in acc} == {b["batch_id"] for b in ingested}
    for a in acc:
        assert a["bronze_rows"] == a["silver_rows"] + a["quarantined"] + a["superseded"], a
    assert sum(a["bronze_rows"] for a in acc) == sum(d["rows"] for d in ours if d["expect"] == "ingest")
    scored = {s["run_id"] for s in ctx.lake.read("gold", "quality_scores").to_pylist()}
    assert {a["run_id"] for a in acc} <= scored  # every silver run was scored by the governance DAG

    print(f"\nairflow deployed: {len(runs)} DAG runs, chain idle {waited:.0f} s after the triggers, "
          f"test body {time.monotonic() - t0:.0f} s")
