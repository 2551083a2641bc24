"""One deployment definition (issue 12, point 5): the CLI, the Airflow side and the dashboard resolve the same
lake, landing folder and report folder from the same environment, and where Airflow's arbitrary working
directory would decide a location, the Airflow side refuses instead of guessing.

Before: the CLI put the lake in ``./lake``, Airflow in ``<project>/lake``; ``govlake quality report`` wrote to
``./reports/quality``, the demo to ``<lake>/../reports/quality``, the governance DAG to
``<lake>/_reports/quality``; seven modules read the environment on their own.
"""

from __future__ import annotations

import json
import re
import shutil
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from govlake.context import Context
from govlake.errors import ConfigError
from govlake.locking import LakeBusy
from govlake.project import Settings

PROJECT = Path(__file__).resolve().parents[2]
GOVLAKE = [sys.executable, "-m", "govlake.cli"]
AIRFLOW_SIDE = ("import json; from govlake.jobs import tasks; lay = tasks.layout(); "
                "print(json.dumps({'lake': lay.lake, 'landing': lay.landing, 'reports': str(tasks.reports_dir()), "
                "'engine': tasks.engine_kind(), 'context_lake': tasks.context().settings.lake_root}))")


def environment(**govlake: str) -> dict[str, str]:
    """This process' environment without any GOVLAKE_* variable, plus the given ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOVLAKE_", "OPENLINEAGE_"))}
    return env | {"GOVLAKE_PROJECT": str(PROJECT), "COLUMNS": "400"} | govlake


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def cli_settings(env: dict[str, str], cwd: Path) -> dict[str, str]:
    done = run([*GOVLAKE, "settings", "--format", "json"], env, cwd)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def airflow_settings(env: dict[str, str], cwd: Path) -> dict[str, str]:
    done = run([sys.executable, "-c", AIRFLOW_SIDE], env, cwd)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def dashboard_lake(env: dict[str, str], cwd: Path) -> str:
    """The lake ``govlake serve`` opens, from its banner (the server is stopped right after)."""
    cwd.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([*GOVLAKE, "serve", "--port", "0", "--no-sql"], env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        banner = proc.stdout.readline()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert "数据湖 " in banner, banner + proc.stderr.read()[-2000:]
    return banner.split("数据湖 ", 1)[1].split("；", 1)[0]


@pytest.mark.slow
@pytest.mark.parametrize("explicit", [False, True], ids=["derived", "explicit"])
def test_cli_airflow_and_dashboard_resolve_one_deployment(tmp_path: Path, explicit: bool) -> None:
    """Same environment, three entry points started from three different working directories: one lake,
    one landing folder, one report folder, one engine."""
    site = tmp_path / "site"
    extra = {"GOVLAKE_LANDING": str(tmp_path / "in"), "GOVLAKE_REPORTS": str(tmp_path / "out"),
             "GOVLAKE_ENGINE": "spark"} if explicit else {}
    env = environment(GOVLAKE_LAKE=str(site / "lake"), **extra)
    cli = cli_settings(env, tmp_path / "shell")
    dags = airflow_settings(env, tmp_path / "airflow-worker")
    web = dashboard_lake(env, tmp_path / "web")
    assert cli["lake"] == dags["lake"] == dags["context_lake"] == web == str(site / "lake")
    assert cli["landing"] == dags["landing"] == extra.get("GOVLAKE_LANDING", str(site / "landing"))
    reports = extra.get("GOVLAKE_REPORTS", str(site / "lake" / "_reports" / "quality"))
    assert cli["reports"] == dags["reports"] == reports
    assert cli["engine"] == dags["engine"] == extra.get("GOVLAKE_ENGINE", "duckdb")


@pytest.mark.slow
def test_quality_report_defaults_to_the_report_folder_airflow_rewrites(tmp_path: Path) -> None:
    """``govlake quality report`` without ``--out`` writes where the governance DAG writes, not into the shell's
    working directory."""
    env = environment(GOVLAKE_LAKE=str(tmp_path / "lake"), GOVLAKE_PSEUDONYM_KEY="test-key-not-secret")
    done = run([*GOVLAKE, "quality", "report", "--no-data-docs"], env, tmp_path / "shell")
    assert done.returncode == 0, done.stderr[-2000:]
    assert (Path(airflow_settings(env, tmp_path / "worker")["reports"]) / "index.html").is_file()
    assert not (tmp_path / "shell" / "reports").exists()


def test_the_cli_resolves_relative_locations_against_its_working_directory(tmp_path: Path) -> None:
    """The shell rule: ``./lake`` by default, a relative GOVLAKE_LAKE from where the command runs."""
    by_default = Settings.from_env(env={"GOVLAKE_PROJECT": str(PROJECT)}, cwd=tmp_path)
    assert by_default.lake_root == str(tmp_path / "lake")
    assert by_default.landing_dir == tmp_path / "landing"
    assert by_default.reports_dir == tmp_path / "lake" / "_reports" / "quality"
    relative = Settings.from_env(env={"GOVLAKE_PROJECT": str(PROJECT), "GOVLAKE_LAKE": "data/lake"}, cwd=tmp_path)
    assert relative.lake_root == str(tmp_path / "data" / "lake")
    explicit = Settings.from_env("other", env={"GOVLAKE_LAKE": "data/lake"}, cwd=tmp_path)
    assert explicit.lake_root == str(tmp_path / "other")  # --lake wins over GOVLAKE_LAKE


@pytest.mark.parametrize("env, variable", [
    ({}, "GOVLAKE_LAKE"),
    ({"GOVLAKE_LAKE": "lake"}, "GOVLAKE_LAKE"),
    ({"GOVLAKE_LAKE": "/srv/lake", "GOVLAKE_LANDING": "landing"}, "GOVLAKE_LANDING"),
    ({"GOVLAKE_LAKE": "s3://bucket/govlake"}, "GOVLAKE_LANDING"),
    ({"GOVLAKE_LAKE": "s3://bucket/govlake", "GOVLAKE_LANDING": "/data/landing"}, "GOVLAKE_REPORTS"),
], ids=["unset", "relative-lake", "relative-landing", "s3-without-landing", "s3-without-reports"])
def test_airflow_refuses_a_location_its_working_directory_would_decide(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as refused:
        Settings.from_env(deployed=True, env={"GOVLAKE_PROJECT": str(PROJECT), **env})
    assert variable in str(refused.value) and "Airflow" in str(refused.value)


def test_airflow_tasks_read_their_locations_from_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from govlake.jobs import tasks

    monkeypatch.setenv("GOVLAKE_LAKE", "s3://bucket/govlake/")
    monkeypatch.setenv("GOVLAKE_LANDING", str(tmp_path / "landing"))
    monkeypatch.setenv("GOVLAKE_REPORTS", str(tmp_path / "reports"))
    assert tasks.lake_root() == "s3://bucket/govlake"
    assert tasks.landing_dir() == tmp_path / "landing" and tasks.reports_dir() == tmp_path / "reports"
    assert tasks.table_uri("gold", "population") == "s3://bucket/govlake/gold/population"
    monkeypatch.delenv("GOVLAKE_LAKE")
    with pytest.raises(ConfigError, match="GOVLAKE_LAKE"):
        tasks.lake_root()


@pytest.mark.parametrize("variable, value", [
    ("GOVLAKE_ENGINE", "spork"), ("GOVLAKE_LOCK_TIMEOUT", "ten"), ("GOVLAKE_LOCK_TTL", "1m"), ("GOVLAKE_THREADS", "0"),
])
def test_a_bad_setting_names_the_variable(variable: str, value: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as bad:
        Settings.from_env(env={"GOVLAKE_PROJECT": str(PROJECT), variable: value}, cwd=tmp_path)
    assert variable in str(bad.value) and value in str(bad.value)


def test_the_lineage_switch(tmp_path: Path) -> None:
    def lineage(**env: str) -> str:
        return Settings.from_env(env={"GOVLAKE_PROJECT": str(PROJECT), **env}, cwd=tmp_path).lineage

    assert lineage() == "file"
    assert lineage(GOVLAKE_LINEAGE="off") == "off"
    assert lineage(OPENLINEAGE_URL="http://marquez:5000") == "openlineage"
    assert lineage(GOVLAKE_LINEAGE="off", OPENLINEAGE_URL="http://marquez:5000") == "off"
    assert lineage(GOVLAKE_LAKE="s3://bucket/govlake") == "off"  # nothing local to append to
    off = Context(Settings.from_env(env={"GOVLAKE_PROJECT": str(PROJECT), "GOVLAKE_LINEAGE": "off"}, cwd=tmp_path))
    assert off.lineage.client is None


def test_the_lock_timeout_comes_from_settings(tmp_path: Path) -> None:
    """A writer waits ``Settings.lock_timeout`` for another one (here a second thread), then gives up."""
    env = {"GOVLAKE_PROJECT": str(PROJECT), "GOVLAKE_LOCK_TIMEOUT": "0.3"}
    ctx = Context(Settings.from_env(str(tmp_path / "lake"), env=env))
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with ctx.lake.writer_lock("test holder"):
            held.set()
            release.wait(30)

    t = threading.Thread(target=holder)
    t.start()
    try:
        assert held.wait(30)
        started = time.monotonic()
        with pytest.raises(LakeBusy) as busy, ctx.lake.writer_lock("second writer"):
            pass
        assert 0.3 <= time.monotonic() - started < 10  # not the 600 s default
        assert "test holder" in str(busy.value) and "GOVLAKE_LOCK_TIMEOUT" in str(busy.value)
    finally:
        release.set()
        t.join()


def test_settings_output_names_secrets_without_showing_them(tmp_path: Path) -> None:
    env = environment(GOVLAKE_LAKE="s3://bucket/govlake", GOVLAKE_LANDING=str(tmp_path / "in"),
                      GOVLAKE_REPORTS=str(tmp_path / "out"), GOVLAKE_PSEUDONYM_KEY="pseudonym-key-value",
                      AWS_ACCESS_KEY_ID="access-key-value", AWS_SECRET_ACCESS_KEY="secret-key-value")
    for fmt in ("json", "table"):
        done = run([*GOVLAKE, "settings", "--format", fmt], env, tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "s3://bucket/govlake" in done.stdout and "GOVLAKE_PSEUDONYM_KEY" in done.stdout
        for secret in ("pseudonym-key-value", "access-key-value", "secret-key-value"):
            assert secret not in done.stdout + done.stderr


def test_no_module_but_the_settings_reads_a_govlake_variable() -> None:
    """Keeps the deployment defined once: a new knob is a Settings field, not an ``os.environ`` read in a job."""
    reads = re.compile(r"(environ|getenv|envvar)\W.*GOVLAKE_")
    sources = [p for folder in ("govlake", "jobs", "dags") for p in (PROJECT / folder).rglob("*.py") if p.name != "project.py"]
    found = [f"{p.relative_to(PROJECT)}:{i}" for p in sources
             for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if reads.search(line)]
    assert found == []


# -- the city: a registry setting (issue 12, point 7) ------------------------------------------------------------

def _project_for(tmp_path: Path, city: str, code_list: str | None) -> Path:
    """A copy of the project's declarations serving another city."""
    for folder in ("schemas", "catalog"):
        shutil.copytree(PROJECT / folder, tmp_path / folder)
    if code_list:
        (tmp_path / "catalog" / "codes" / "gb2260_testcity.yaml").write_text(code_list, encoding="utf-8")
    nodes = tmp_path / "catalog" / "nodes.yaml"
    text, ours = nodes.read_text(encoding="utf-8"), 'city: {code: "440100", name: 广州市, districts: gb2260_guangzhou}'
    assert ours in text
    nodes.write_text(text.replace(ours, city), encoding="utf-8")
    return tmp_path


def test_the_city_and_its_districts_come_from_the_node_registry(tmp_path: Path) -> None:
    from govlake.jobs.quality.suites import contract_checks
    from govlake.registry import load_registry

    code_list = 'name: gb2260_testcity\ntitle: 测试市区划\ncodes:\n  - {code: "990101", label: 甲区, aliases: [甲]}\n'
    project = _project_for(tmp_path, 'city: {code: "990100", name: 测试市, districts: gb2260_testcity}', code_list)
    reg = load_registry(project / "catalog", project / "schemas")
    assert (reg.city.code, reg.city.name) == ("990100", "测试市") and reg.district_codes.values == ["990101"]
    checks = [c for c in contract_checks(reg.contracts["schools"], reg) if c.rule.endswith(".gz_district")]
    assert checks and all(c.kwargs["value_set"] == ["990101"] and "不是测试市的" in c.description for c in checks)


def test_a_city_naming_a_missing_code_list_is_refused_at_load(tmp_path: Path) -> None:
    from govlake.registry import load_registry

    project = _project_for(tmp_path, 'city: {code: "990100", name: 测试市, districts: gb2260_testcty}', None)
    with pytest.raises(ConfigError) as bad:
        load_registry(project / "catalog", project / "schemas")
    assert "city.districts" in str(bad.value) and "nodes.yaml" in str(bad.value)
