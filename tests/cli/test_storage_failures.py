"""A full or read-only lake gives a clear message, exit 3 and no traceback; the lake stays consistent and
the same command succeeds once the storage is fixed (issue 11, point 16).

The lake sits on a small tmpfs mounted for the test (CI runs as root, as the sessions do); the filesystem
really returns ENOSPC and EROFS, exactly as a full or read-only volume in production would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

GOVLAKE = [sys.executable, "-m", "govlake.cli"]
ENV = {**os.environ, "GOVLAKE_PSEUDONYM_KEY": "test-key-not-secret"}


def govlake(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GOVLAKE, *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)


@pytest.fixture()
def volume(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "volume"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("needs root to mount a tmpfs: " + mounted.stderr.decode()[-200:])
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.fixture(scope="module")
def deliveries(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("landing")
    done = govlake("generate", "--rows", "40000", "--dataset", "hukou_population", "--format", "csv",
                   "--out", str(out), cwd=out)
    assert done.returncode == 0, done.stderr[-2000:]
    files = sorted(out.glob("gaj/hukou_population/*.csv"))
    assert len(files) >= 2
    return files


def bronze_rows(lake: Path) -> int:
    from deltalake import DeltaTable

    path = lake / "bronze" / "hukou_population"
    return DeltaTable(str(path)).to_pyarrow_dataset().count_rows() if (path / "_delta_log").is_dir() else 0


def assert_clear_failure(done: subprocess.CompletedProcess[str], text: str) -> None:
    assert done.returncode == 3, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr and text in done.stderr and "处理建议" in done.stderr, done.stderr


@pytest.mark.slow
def test_full_disk_is_reported_and_the_rerun_completes(volume: Path, deliveries: list[Path], tmp_path: Path) -> None:
    lake = volume / "lake"
    first = deliveries[0]
    assert govlake("ingest", str(first), "--node", "gaj", "--dataset", "hukou_population", "--lake", str(lake),
                   cwd=tmp_path).returncode == 0
    before = bronze_rows(lake)
    # Leave less room than the next file's bronze write needs.
    filler = volume / "filler"
    free = os.statvfs(volume).f_bavail * os.statvfs(volume).f_frsize
    filler.write_bytes(b"\0" * max(free - 64 * 1024, 0))
    full = govlake("ingest", str(deliveries[1]), "--node", "gaj", "--dataset", "hukou_population",
                   "--lake", str(lake), cwd=tmp_path)
    assert_clear_failure(full, "存储空间已满")
    assert bronze_rows(lake) == before  # the interrupted transaction left nothing behind
    filler.unlink()
    again = govlake("ingest", str(deliveries[1]), "--node", "gaj", "--dataset", "hukou_population",
                    "--lake", str(lake), cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert bronze_rows(lake) > before


@pytest.mark.slow
def test_read_only_lake_is_reported_and_writes_resume_when_writable(volume: Path, deliveries: list[Path],
                                                                     tmp_path: Path) -> None:
    lake = volume / "lake"
    assert govlake("ingest", str(deliveries[0]), "--node", "gaj", "--dataset", "hukou_population",
                   "--lake", str(lake), cwd=tmp_path).returncode == 0
    before = bronze_rows(lake)
    subprocess.run(["mount", "-o", "remount,ro", str(volume)], check=True)
    try:
        assert_clear_failure(govlake("run", "--lake", str(lake), cwd=tmp_path), "只读")
        assert_clear_failure(govlake("ingest", str(deliveries[1]), "--node", "gaj", "--dataset", "hukou_population",
                                     "--lake", str(lake), cwd=tmp_path), "只读")
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(volume)], check=True)
    assert bronze_rows(lake) == before
    done = govlake("run", "--lake", str(lake), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
