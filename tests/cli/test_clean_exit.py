"""Every read command exits cleanly, run after run (issue 11, point 19).

``govlake indicators --format json`` used to abort with SIGABRT (exit 134, "terminate called without an
active exception") in most runs: pyarrow's worker threads released delta-rs' Python filesystem while the
interpreter was exiting. The race is timing-dependent, so each command runs several times as a real process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

GOVLAKE = [sys.executable, "-m", "govlake.cli"]
RUNS = 6

COMMANDS = [
    ["indicators", "--format", "json"],
    ["indicators"],
    ["catalog", "--format", "json"],
    ["catalog", "--nodes"],
    ["duties", "--findings"],
    ["lineage", "gold.population"],
    ["sql", "SELECT count(*) AS n FROM gold.population"],
]


@pytest.fixture(scope="module")
def demo_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("exit")
    env = {**os.environ, "GOVLAKE_PSEUDONYM_KEY": "test-key-not-secret"}
    done = subprocess.run([*GOVLAKE, "demo", "--rows", "20000", "--lake", str(work / "lake")], cwd=work, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return work / "lake"


@pytest.mark.slow
@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a))
def test_command_exits_cleanly_every_time(demo_lake: Path, args: list[str]) -> None:
    env = {**os.environ, "GOVLAKE_PSEUDONYM_KEY": "test-key-not-secret"}
    codes = []
    for _ in range(RUNS):
        done = subprocess.run([*GOVLAKE, *args, "--lake", str(demo_lake)], env=env, capture_output=True, text=True,
                              timeout=300)
        assert "terminate called" not in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]
        codes.append(done.returncode)
    assert codes == [0] * RUNS
