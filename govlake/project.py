"""The one deployment definition: where the declarations, the lake and its neighbours are, and how govlake runs.

Every entry point builds one :class:`Settings` with :meth:`Settings.from_env` and reads every location and
knob from it: the CLI (``govlake.cli.make_context``; the dashboard is started by ``govlake serve`` and gets
the CLI's Settings), the Airflow DAG files and tasks (``govlake.jobs.tasks``, with ``deployed=True``) and the
jobs (through the Context they are handed). No other module reads a ``GOVLAKE_*`` variable, the way a
Dagster ``Definitions`` object chooses the resources of a deployment in one place.

**One rule for relative paths.** A relative location (including the default ``./lake``) is resolved against
the working directory of the process that builds the Settings, once, and stored absolute. That is what a
user at a shell expects (``govlake demo`` in a folder puts its lake there, as ``git init`` would). Airflow's
processes (DAG processor, scheduler, workers) each have their own, arbitrary working directory, so they
build ``Settings.from_env(deployed=True)``, which refuses any location that would depend on it: the lake
must be set (``GOVLAKE_LAKE``, absolute or ``s3://``), and so must the landing and report folders when they
cannot be derived from a local lake. ``make airflow`` and ``infra/airflow/airflow.env`` set them.

Every variable, the field it sets and its default:

- ``GOVLAKE_PROJECT`` → ``project_dir``: the source checkout, else the working directory or a parent holding
  ``schemas/`` and ``catalog/``
- ``GOVLAKE_LAKE`` → ``lake_root``: ``./lake`` (``--lake`` overrides); a path or ``s3://bucket/prefix``
- ``GOVLAKE_S3_ENDPOINT``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION`` →
  ``storage_options`` (delta-rs / object_store options of an S3 lake)
- ``GOVLAKE_LANDING`` → ``landing_dir``: ``landing/`` next to a local lake; ``./landing`` for an S3 lake
- ``GOVLAKE_REPORTS`` → ``reports_dir``: ``<lake>/_reports/quality``; ``./reports/quality`` for an S3 lake
- ``GOVLAKE_ENGINE`` → ``engine_kind``: ``duckdb`` or ``spark`` (``--engine`` overrides)
- ``GOVLAKE_LINEAGE`` → ``lineage``: ``openlineage`` when ``OPENLINEAGE_URL`` or ``OPENLINEAGE_CONFIG`` is set
  (the client reads its own configuration), else ``file`` (``<lake>/_lineage/``) for a local lake, else
  ``off``; ``GOVLAKE_LINEAGE=off`` disables
- ``GOVLAKE_LOCK_TIMEOUT`` → ``lock_timeout``: 600 s a writer waits for the lake's writer lock
- ``GOVLAKE_LOCK_TTL`` → ``lock_ttl``: 60 s an S3 lease survives without a heartbeat
- ``GOVLAKE_DUCKDB_MEMORY`` → ``duckdb_memory_limit``: ``2GB``; ``GOVLAKE_THREADS`` → ``duckdb_threads``: CPUs
- ``GOVLAKE_PSEUDONYM_KEY`` → ``pseudonym_key``: none, a local lake keeps its own key in ``_secrets/``
  (required for an S3 lake)
- ``GOVLAKE_SPARK_MASTER`` / ``_DRIVER_MEMORY`` / ``_SHUFFLE_PARTITIONS`` / ``_LOG_LEVEL`` → ``spark_*``:
  ``local[2]``, ``1g``, 4, ``ERROR``
- ``GOVLAKE_STRICT`` → ``strict``: off (Airflow: refused files and held batches fail the DAG run)
- ``GOVLAKE_INGEST_SCHEDULE`` → ``ingest_schedule``: ``@hourly`` (``none``: ingestion DAGs run when triggered)
- ``GOVLAKE_CONTROL_DB`` → ``control_db``: the control-plane database URL (users, grants, workflows, audit);
  default ``sqlite:///<lake>/_control/control.db`` for a local lake, ``sqlite:///<project>/.govlake/control.db``
  for an object-store lake; ``postgresql+psycopg://...`` in production

Not settings: ``OPENLINEAGE_PARENT_ID`` / ``OPENLINEAGE_ROOT_PARENT_ID`` (handed by an Airflow task to the job it
runs, govlake/lineage_events.py) and PySpark's own ``PYSPARK_PYTHON``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from govlake.errors import ConfigError

_MARKERS = ("schemas", "catalog")
ENGINES = ("duckdb", "spark")
_OFF = ("off", "0", "false", "no")
_ON = ("1", "true", "yes", "on")
_REMOTE = ("s3://", "s3a://")
_S3_OPTIONS = (
    ("GOVLAKE_S3_ENDPOINT", "AWS_ENDPOINT_URL"),
    ("AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"),
    ("AWS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"),
    ("AWS_REGION", "AWS_REGION"),
)
_DEPLOYED_HINT = ("Airflow 的各个进程工作目录各不相同，位置须显式给出：在 Airflow 的环境中设置 {var}"
                  "（绝对路径或 s3:// URI；见 infra/airflow/airflow.env，make airflow 会自动设置）")


def find_project_dir(start: Path | None = None, env: Mapping[str, str] | None = None) -> Path:
    """The directory holding schemas/ and catalog/: $GOVLAKE_PROJECT, else the source checkout."""
    given = (os.environ if env is None else env).get("GOVLAKE_PROJECT")
    candidates = [Path(given)] if given else []
    candidates.append(Path(__file__).resolve().parent.parent)
    here = (start or Path.cwd()).resolve()
    candidates.extend([here, *here.parents])
    for cand in candidates:
        if all((cand / m).is_dir() for m in _MARKERS):
            return cand
    raise ConfigError(
        "找不到 govlake 项目目录（需包含 schemas/ 与 catalog/）",
        hint="在项目根目录下运行，或设置环境变量 GOVLAKE_PROJECT 指向项目目录",
    )


def is_remote(root: str) -> bool:
    """An object-store lake (``s3://``, ``s3a://``) rather than a local directory."""
    return root.startswith(_REMOTE)


@dataclass(frozen=True)
class Settings:
    """Everything that differs between deployments, resolved once (see the module docstring for the table).

    ``landing_dir`` and ``reports_dir`` left as None are derived from the lake, so a Settings built directly
    (``Settings(lake_root=...)``) places them exactly as ``from_env`` would."""

    lake_root: str = "./lake"
    project_dir: Path = field(default_factory=find_project_dir)
    storage_options: dict[str, str] = field(default_factory=dict)
    landing_dir: Path | None = None
    reports_dir: Path | None = None
    engine_kind: str = "duckdb"
    lineage: str = "file"  # openlineage | file | off: where the jobs' OpenLineage run events go
    lock_timeout: float = 600.0
    lock_ttl: float = 60.0
    pseudonym_key: bytes = field(default=b"", repr=False)
    duckdb_memory_limit: str = "2GB"
    duckdb_threads: int = 2
    spark_master: str = "local[2]"
    spark_driver_memory: str = "1g"
    spark_shuffle_partitions: int = 4
    spark_log_level: str = "ERROR"
    strict: bool = False
    ingest_schedule: str | None = "@hourly"  # None: the ingestion DAGs run only when triggered
    control_db: str = ""  # "" -> derived from the lake (see the module docstring)

    def __post_init__(self) -> None:
        if self.landing_dir is None:
            object.__setattr__(self, "landing_dir", _beside_lake(self.lake_root, "landing"))
        if self.reports_dir is None:
            object.__setattr__(self, "reports_dir", _in_lake(self.lake_root, "_reports/quality", "reports/quality"))
        if not self.control_db:
            object.__setattr__(self, "control_db", _default_control_db(self.lake_root, self.project_dir))

    @classmethod
    def from_env(cls, lake: str | None = None, *, deployed: bool = False,
                 env: Mapping[str, str] | None = None, cwd: Path | None = None) -> "Settings":
        """Settings from the environment (``env``, default ``os.environ``) and explicit overrides.

        ``lake`` (``--lake``) overrides ``GOVLAKE_LAKE``; relative locations are resolved against ``cwd``
        (default: the working directory). ``deployed``: the process has no meaningful working directory
        (Airflow), so a location that would be resolved against it is refused instead."""
        env = os.environ if env is None else env
        base = Path.cwd() if cwd is None else Path(cwd)
        root = _lake_root(lake or env.get("GOVLAKE_LAKE") or "", deployed, base)
        landing = _folder(env, "GOVLAKE_LANDING", deployed, not is_remote(root), base)
        reports = _folder(env, "GOVLAKE_REPORTS", deployed, not is_remote(root), base)
        key = env.get("GOVLAKE_PSEUDONYM_KEY", "")
        return cls(
            lake_root=root,
            project_dir=find_project_dir(base, env),
            landing_dir=landing or _beside_lake(root, "landing", base),
            reports_dir=reports or _in_lake(root, "_reports/quality", "reports/quality", base),
            storage_options=_storage_options(env, root),
            engine_kind=_choice(env, "GOVLAKE_ENGINE", ENGINES),
            lineage=_lineage(env, root),
            lock_timeout=_seconds(env, "GOVLAKE_LOCK_TIMEOUT", 600.0),
            lock_ttl=_seconds(env, "GOVLAKE_LOCK_TTL", 60.0),
            pseudonym_key=key.encode("utf-8") if key else b"",
            duckdb_memory_limit=env.get("GOVLAKE_DUCKDB_MEMORY") or "2GB",
            duckdb_threads=_count(env, "GOVLAKE_THREADS", os.cpu_count() or 2),
            spark_master=env.get("GOVLAKE_SPARK_MASTER") or "local[2]",
            spark_driver_memory=env.get("GOVLAKE_SPARK_DRIVER_MEMORY") or "1g",
            spark_shuffle_partitions=_count(env, "GOVLAKE_SPARK_SHUFFLE_PARTITIONS", 4),
            spark_log_level=env.get("GOVLAKE_SPARK_LOG_LEVEL") or "ERROR",
            strict=env.get("GOVLAKE_STRICT", "").strip().lower() in _ON,
            ingest_schedule=_schedule(env.get("GOVLAKE_INGEST_SCHEDULE", "@hourly")),
            control_db=env.get("GOVLAKE_CONTROL_DB", "").strip(),
        )

    @cached_property
    def is_local(self) -> bool:
        return not is_remote(self.lake_root)

    @property
    def schemas_dir(self) -> Path:
        return self.project_dir / "schemas"

    @property
    def catalog_dir(self) -> Path:
        return self.project_dir / "catalog"

    @property
    def expectations_dir(self) -> Path:
        return self.project_dir / "expectations"

    @property
    def control_db_exists(self) -> bool:
        """Whether the control-plane database may hold anything: a SQLite file not created yet holds no users,
        grants or objections (and a reader must not create it); a server URL is assumed to be there. Answered
        without SQLAlchemy, so the pipeline's "any open objection?" check costs nothing on a lake never served."""
        url = self.control_db
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            return path == ":memory:" or Path(path).exists()
        return True

    @property
    def pseudonym_key_source(self) -> str:
        """Where the pseudonym key comes from, for display (never the key itself)."""
        if self.pseudonym_key:
            return "环境变量 GOVLAKE_PSEUDONYM_KEY"
        return "湖内密钥文件 _secrets/pseudonym.key（首次使用时生成）" if self.is_local else "未设置（对象存储湖必须设置）"

    def describe(self) -> dict[str, str]:
        """The resolved settings as text, for ``govlake settings``: secrets are named, never shown."""
        opts = {k: ("***" if "SECRET" in k or "KEY_ID" in k else v) for k, v in sorted(self.storage_options.items())}
        return {
            "project": str(self.project_dir),
            "lake": self.lake_root,
            "landing": str(self.landing_dir),
            "reports": str(self.reports_dir),
            "engine": self.engine_kind,
            "lineage": self.lineage,
            "lock_timeout": f"{self.lock_timeout:g}",
            "lock_ttl": f"{self.lock_ttl:g}",
            "duckdb_memory_limit": self.duckdb_memory_limit,
            "duckdb_threads": str(self.duckdb_threads),
            "pseudonym_key": self.pseudonym_key_source,
            "storage_options": ", ".join(f"{k}={v}" for k, v in opts.items()),
            "spark": f"{self.spark_master}, driver {self.spark_driver_memory}, "
                     f"{self.spark_shuffle_partitions} shuffle partitions, log {self.spark_log_level}",
            "strict": str(self.strict).lower(),
            "ingest_schedule": self.ingest_schedule or "none",
            "control_db": _without_password(self.control_db),
        }


# -- resolution helpers ------------------------------------------------------------------------------------

def _default_control_db(root: str, project_dir: Path) -> str:
    """SQLite beside a local lake's data (owner-only like it); an object-store lake keeps it in the project."""
    if is_remote(root):
        return f"sqlite:///{(project_dir / '.govlake' / 'control.db').resolve()}"
    return f"sqlite:///{(Path(root) / '_control' / 'control.db').resolve()}"


def _without_password(url: str) -> str:
    """A database URL for display: ``postgresql://user:***@host/db``."""
    head, sep, tail = url.partition("@")
    if not sep or "://" not in head:
        return url
    scheme, _, cred = head.partition("://")
    user = cred.split(":", 1)[0]
    return f"{scheme}://{user}:***@{tail}" if ":" in cred else url


def _absolute(raw: str, base: Path) -> Path:
    return (base / Path(raw).expanduser()).resolve()


def _lake_root(raw: str, deployed: bool, base: Path) -> str:
    raw = raw.strip()
    if is_remote(raw):
        return raw.rstrip("/")
    if deployed and not (raw and Path(raw).expanduser().is_absolute()):
        what = f"为相对路径 “{raw}”" if raw else "未设置"
        raise ConfigError(f"数据湖位置（GOVLAKE_LAKE）{what}", hint=_DEPLOYED_HINT.format(var="GOVLAKE_LAKE"))
    return str(_absolute(raw or "lake", base))


def _folder(env: Mapping[str, str], var: str, deployed: bool, derivable: bool, base: Path) -> Path | None:
    """An explicitly set folder made absolute; None when it is to be derived from the lake."""
    raw = (env.get(var) or "").strip()
    if deployed and raw and not Path(raw).expanduser().is_absolute():
        raise ConfigError(f"{var} 为相对路径 “{raw}”", hint=_DEPLOYED_HINT.format(var=var))
    if deployed and not raw and not derivable:
        raise ConfigError(f"对象存储湖须设置 {var}", hint=_DEPLOYED_HINT.format(var=var))
    return _absolute(raw, base) if raw else None


def _beside_lake(root: str, name: str, base: Path | None = None) -> Path:
    """``<name>`` next to a local lake; in the working directory for an object-store lake."""
    return _absolute(name, base or Path.cwd()) if is_remote(root) else Path(root).parent / name


def _in_lake(root: str, inside: str, remote: str, base: Path | None = None) -> Path:
    """``<lake>/<inside>`` for a local lake; ``<remote>`` in the working directory for an object-store lake."""
    return _absolute(remote, base or Path.cwd()) if is_remote(root) else Path(root) / inside


def _storage_options(env: Mapping[str, str], root: str) -> dict[str, str]:
    opts = {opt: env[var] for var, opt in _S3_OPTIONS if env.get(var)}
    if opts.get("AWS_ENDPOINT_URL", "").startswith("http://"):
        opts["AWS_ALLOW_HTTP"] = "true"
    if is_remote(root):
        opts.setdefault("AWS_S3_ALLOW_UNSAFE_RENAME", "true")
    return opts


def _lineage(env: Mapping[str, str], root: str) -> str:
    """The jobs' lineage transport. Only the switch is ours: the HTTP transport is configured by OpenLineage's
    own variables, which its client reads."""
    if env.get("GOVLAKE_LINEAGE", "").strip().lower() in _OFF:
        return "off"
    if env.get("OPENLINEAGE_URL") or env.get("OPENLINEAGE_CONFIG"):
        return "openlineage"
    return "off" if is_remote(root) else "file"


def _schedule(raw: str) -> str | None:
    """A cron expression or preset; empty, ``none`` or ``manual``: trigger only."""
    raw = raw.strip()
    return None if raw.lower() in ("", "none", "manual") else raw


def _choice(env: Mapping[str, str], var: str, allowed: tuple[str, ...]) -> str:
    raw = (env.get(var) or allowed[0]).strip().lower()
    if raw not in allowed:
        raise ConfigError(f"环境变量 {var} 应为 {' 或 '.join(allowed)}，实际为 “{raw}”", hint=f"例如 {var}={allowed[0]}")
    return raw


def _seconds(env: Mapping[str, str], var: str, default: float) -> float:
    raw = (env.get(var) or "").strip()
    if not raw:
        return default
    try:
        return max(0.0, float(raw))
    except ValueError:
        raise ConfigError(f"环境变量 {var} 应为秒数，实际为 “{raw}”", hint=f"例如 {var}={int(default)}") from None


def _count(env: Mapping[str, str], var: str, default: int) -> int:
    raw = (env.get(var) or "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"环境变量 {var} 应为正整数，实际为 “{raw}”", hint=f"例如 {var}={default}")
    return int(raw)
