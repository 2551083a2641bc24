"""Everything govlake writes is owner-only (issue 11, point 7).

Bronze Parquet files and Delta logs carry delivered text (and their statistics did carry names); the landing
folder holds the deliveries themselves. The demo runs as a real process with the common umask 022, which
before this fix left them 644/755 for every local user to read.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_creates_only_owner_only_files(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "GOVLAKE_PSEUDONYM_KEY"}  # the lake makes its own key
    done = subprocess.run([sys.executable, "-c", "import os, sys; os.umask(0o022); from govlake.cli import main; "
                           "sys.argv = ['govlake', 'demo', '--rows', '5000']; main()"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    written = [p for p in tmp_path.rglob("*")]
    roots = {p.relative_to(tmp_path).parts[0] for p in written}
    assert {"lake", "landing"} <= roots
    assert any(p.suffix == ".parquet" and "bronze" in p.parts for p in written)
    assert any(p.parent.name == "_delta_log" for p in written)
    exposed = [f"{oct(p.stat().st_mode & 0o777)} {p.relative_to(tmp_path)}" for p in written
               if not p.is_symlink() and p.stat().st_mode & 0o077]
    assert exposed == [], exposed[:20]
    secrets = tmp_path / "lake" / "_secrets"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in secrets.iterdir())
