"""A throw-away PostgreSQL server for tests: ``initdb`` in a temp dir, ``postgres`` on a free loopback port,
``pg_ctl stop`` and the directory removed afterwards.

Used as Airflow's metadata database by tests/dags/test_airflow_deployed.py, and meant for any test that needs
a real Postgres (e.g. a control-plane DB). It needs only Debian's ``postgresql`` package (``.ci/run``
installs it), no running service and no Python driver: the server is driven through its own binaries.

Postgres refuses to run as root. As root (CI) the cluster is created and run by the ``postgres`` user of
the Debian package (or a system user ``govlake-pg``, created if neither exists); otherwise by the current
user. The cluster trusts loopback connections (it lives for one test session and listens on 127.0.0.1
only) and runs without fsync: nothing in it has to survive a crash.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SUPERUSER = "govlake"
"""The cluster's bootstrap superuser (``initdb -U``): the role tests connect as."""

SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "max_connections": "200",  # an Airflow deployment: every component and task process holds a pool
    "shared_buffers": "32MB",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries on this machine."""


@dataclass(frozen=True)
class Postgres:
    """A running throw-away server: where it is and how to reach it."""

    bindir: Path
    root: Path  # data directory, socket and server log live under it
    port: int
    run_as: str | None  # the OS user running the server (None: the current user)
    host: str = "127.0.0.1"
    user: str = SUPERUSER

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str = "postgres", driver: str = "psycopg") -> str:
        """SQLAlchemy URL, e.g. ``postgresql+psycopg://govlake@127.0.0.1:54321/airflow``."""
        return f"postgresql+{driver}://{self.user}@{self.host}:{self.port}/{database}"

    def dsn(self, database: str = "postgres") -> str:
        """libpq connection string (psql, psycopg.connect)."""
        return f"host={self.host} port={self.port} user={self.user} dbname={database}"

    def create_database(self, name: str) -> None:
        self._client("createdb", name)

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL with psql; rows as ``|``-separated lines (no header)."""
        return self._client("psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", database, "-c", sql)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def _client(self, tool: str, *args: str) -> str:
        exe = self.bindir / tool
        cmd = [str(exe) if exe.exists() else tool, "-h", self.host, "-p", str(self.port), "-U", self.user, *args]
        return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=60).stdout


def find_bindir() -> Path:
    """The newest installed server's binaries (Debian: /usr/lib/postgresql/<major>/bin), else PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise PostgresUnavailable("PostgreSQL server binaries not found: apt-get install -y postgresql")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_user() -> str | None:
    """Who runs the server: None (ourselves) unless we are root, whom Postgres refuses."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "govlake-pg"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "govlake-pg"],
                   check=True, capture_output=True)
    return "govlake-pg"


def _as(user: str | None, cmd: list[str]) -> list[str]:
    return cmd if user is None else ["runuser", "-u", user, "--", *cmd]


@contextmanager
def running_postgres(prefix: str = "govlake-pg-", attempts: int = 3) -> Iterator[Postgres]:
    """Start a fresh cluster, yield it, stop it and delete it (also when the body raised)."""
    bindir = find_bindir()
    user = _server_user()
    root = Path(tempfile.mkdtemp(prefix=prefix))
    if user is not None:
        info = pwd.getpwnam(user)
        os.chown(root, info.pw_uid, info.pw_gid)
    server: Postgres | None = None
    try:
        server = _start(bindir, root, user, attempts)
        yield server
    finally:
        if server is not None:
            _stop(server)
        shutil.rmtree(root, ignore_errors=True)


def _stop(server: Postgres) -> None:
    subprocess.run(_as(server.run_as, [str(server.bindir / "pg_ctl"), "-D", str(server.datadir), "-m", "fast",
                                       "-w", "-t", "60", "stop"]), capture_output=True, timeout=90)


def _start(bindir: Path, root: Path, user: str | None, attempts: int) -> Postgres:
    subprocess.run(_as(user, [str(bindir / "initdb"), "-D", str(root / "data"), "-U", SUPERUSER,
                              "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"]),
                   check=True, capture_output=True, text=True, timeout=180)
    last = ""
    for _ in range(attempts):  # the free port can be taken between free_port() and the bind: try another
        server = Postgres(bindir=bindir, root=root, port=free_port(), run_as=user)
        opts = " ".join([f"-p {server.port}", f"-k {root}"] + [f"-c {k}={v}" for k, v in SERVER_SETTINGS.items()])
        started = subprocess.run(_as(user, [str(bindir / "pg_ctl"), "-D", str(server.datadir), "-l",
                                            str(server.log_file), "-o", opts, "-w", "-t", "60", "start"]),
                                 capture_output=True, text=True, timeout=90)
        if started.returncode == 0:
            if _accepts(server):
                return server
            _stop(server)
        last = started.stderr + started.stdout + "\n" + server.log_tail()
        time.sleep(0.5)
    raise RuntimeError(f"PostgreSQL did not start in {root}:\n{last}")


def _accepts(server: Postgres) -> bool:
    try:
        return server.psql("SELECT 1").strip() == "1"
    except subprocess.CalledProcessError:
        return False


def postgres_for_tests(prefix: str = "govlake-pg-") -> Iterator[Postgres]:
    """The body of a ``postgres`` fixture: a running server, skipped where the server binaries are missing
    and failed in CI (where .ci/run installs them, so a missing server is a broken machine, not a skip)."""
    import pytest

    try:
        with running_postgres(prefix=prefix) as pg:
            yield pg
    except PostgresUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc} (.ci/run installs it)")
        pytest.skip(str(exc))
