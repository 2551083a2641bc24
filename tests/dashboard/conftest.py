"""Real headless Chromium (Debian's chromium + chromium-driver, installed here when missing) driving the
dashboard served by uvicorn on a free localhost port, over a lake built by the real pipeline."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from govlake.dashboard import CHROMEDRIVER as DRIVER, CHROMIUM


FONTS = Path("/usr/share/fonts/opentype/noto")  # fonts-noto-cjk: Chinese text renders as glyphs, not boxes


def ensure_chromium() -> None:
    if Path(CHROMIUM).exists() and Path(DRIVER).exists() and FONTS.exists():
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("Chromium is not installed and cannot be installed here (needs root and apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, capture_output=True)
    done = subprocess.run(["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver", "fonts-noto-cjk"], env=env, capture_output=True)
    if done.returncode != 0:
        pytest.fail("apt-get install chromium chromium-driver fonts-noto-cjk failed:\n" + done.stderr.decode()[-2000:])


@pytest.fixture(scope="session")
def browser():
    ensure_chromium()
    from govlake.dashboard import headless_chromium

    driver = headless_chromium()
    yield driver
    driver.quit()


@pytest.fixture(scope="session")
def demo_lake(tmp_path_factory: pytest.TempPathFactory):
    """A lake from the real pipeline: generated deliveries for every node, ingested and run."""
    from datetime import date

    from govlake.context import Context
    from govlake.jobs.generate import generate
    from govlake.jobs.ingest import ingest_file
    from govlake.jobs.pipeline import run_pending

    base = tmp_path_factory.mktemp("dash")
    os.environ.setdefault("GOVLAKE_PSEUDONYM_KEY", "test-key-not-secret")
    ctx = Context.from_env(str(base / "lake"))
    manifest = generate(ctx.registry, base / "landing", rows=10_000, seed=7)
    for d in manifest.deliveries:
        ingest_file(ctx, base / "landing" / d.path, d.node, d.dataset)
    with ctx.engine() as engine:
        run_pending(ctx, engine, as_of=date(2026, 11, 20))
    return ctx


@pytest.fixture(scope="session")
def site(demo_lake):
    from govlake.dashboard import BackgroundServer

    s = BackgroundServer(demo_lake)
    yield s
    s.stop()
