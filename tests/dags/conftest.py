"""Airflow for the DAG tests: a throw-away AIRFLOW_HOME with its own SQLite metadata DB, the repo's dags/
as DAGs folder, examples off, OpenLineage task events to a file.

Airflow reads its configuration when it is first imported, so the environment is set when this conftest
is imported (at collection, before any test module imports Airflow) and Airflow itself is only imported
inside fixtures and tests.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
DAGS = PROJECT / "dags"

AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="govlake-airflow-"))
OL_EVENTS = AIRFLOW_HOME / "openlineage" / "events.jsonl"
OL_EVENTS.parent.mkdir()  # the file transport does not create directories
AIRFLOW_ENV = {
    "AIRFLOW_HOME": str(AIRFLOW_HOME),
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME}/airflow.db",
    "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__OPENLINEAGE__NAMESPACE": "govlake",
    "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "file", "log_file_path": str(OL_EVENTS), "append": True}),
}
if "airflow" not in sys.modules:
    os.environ.update(AIRFLOW_ENV)


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """The metadata DB, created once per session (``airflow db migrate`` without the CLI)."""
    pytest.importorskip("airflow.sdk")
    from airflow.configuration import conf

    conn = conf.get("database", "sql_alchemy_conn")
    if conn != AIRFLOW_ENV["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]:  # never touch a real metadata DB
        pytest.fail(f"Airflow was configured before tests/dags/conftest.py (metadata DB {conn}); run tests/dags on their own")
    from airflow.utils import db

    db.initdb()
    return AIRFLOW_HOME / "airflow.db"


@pytest.fixture()
def govlake_env(ctx, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Lake and landing of this test, as the DAG files and the tasks read them (GOVLAKE_LAKE/GOVLAKE_LANDING)."""
    env = {"GOVLAKE_LAKE": ctx.settings.lake_root, "GOVLAKE_LANDING": str(tmp_path / "landing"),
           "GOVLAKE_INGEST_SCHEDULE": "@hourly", "GOVLAKE_STRICT": "", "GOVLAKE_ENGINE": "duckdb"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


def dag_bag():
    """Parse dags/ the way the DAG processor does (a bundle DagBag: the DAG folder is importable)."""
    from airflow.dag_processing.dagbag import BundleDagBag

    return BundleDagBag(dag_folder=str(DAGS), bundle_path=DAGS, bundle_name="dags-folder")
