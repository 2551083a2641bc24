"""Dashboard at scale: a copy of a lake's gold layer with a catalog of N resources, and ``govlake bench
--dashboard``, which loads every page in headless Chromium and prints its load time (target: under a second
per page with 1,000 resources)."""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

import pyarrow as pa

from govlake.context import Context
from govlake.tables import CATALOG_RESOURCES

PAGES = ["/", "/catalog", "/catalog?q=人口", "/catalog/hukou_population", "/duties", "/indicators", "/quality",
         "/lineage?table=gold.population"]


def inflate_catalog(ctx: Context, root: Path, n: int) -> Context:
    """Copy the gold layer (and lineage) to ``root`` and grow gold.catalog_resources to ``n`` resources."""
    src = Path(ctx.settings.lake_root)
    dst = root / "lake"
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src / "gold", dst / "gold")
    # Its own control database (control_db "" is derived from the new lake): the copy's users, sessions and
    # audit rows never mix with the source deployment's.
    big = Context(dataclasses.replace(ctx.settings, lake_root=str(dst), control_db=""))
    t = big.lake.read(*CATALOG_RESOURCES.ref)
    rows = t.to_pylist()
    out = []
    for i in range(n):
        r = dict(rows[i % len(rows)])
        if i >= len(rows):
            r.update(code=f"{r['code']}-{i:04d}", name=f"{r['name']}（第 {i} 号副本）", dataset=f"{r['dataset']}_{i:04d}")
        out.append(r)
    big.lake.overwrite(*CATALOG_RESOURCES.ref, pa.Table.from_pylist(out, schema=t.schema))
    return big


def run_dashboard_bench(ctx: Context, n: int = 1000, rounds: int = 3) -> dict[str, float]:
    """Median load time per page (navigation start to load event, in Chromium), after one warm-up load."""
    import statistics
    import tempfile

    from rich.console import Console
    from rich.table import Table

    import secrets

    from govlake.access.dashboard import BackgroundServer, browser_login, headless_chromium  # as in the tests
    from govlake.control.identities import add_user
    from govlake.control.principal import Principal

    console = Console()
    big = inflate_catalog(ctx, Path(tempfile.mkdtemp(prefix="govlake-dash-")), n)
    city = big.registry.city.code
    password = "Perf-" + secrets.token_hex(12)  # a throwaway administrator of the copy's own control database
    add_user(big.settings, big.registry, "dashbench", city, "admin", password, by=Principal.owner_of(big.registry))
    site = BackgroundServer(big)
    driver = headless_chromium()
    out: dict[str, float] = {}
    try:
        browser_login(driver, site.url, "dashbench", password)  # every page is behind the login
        for page in PAGES:
            driver.get(site.url + page)  # warm-up: table caches
            times = []
            for _ in range(rounds):
                t0 = time.perf_counter()
                driver.get(site.url + page)
                times.append(driver.execute_script(
                    "const t = performance.getEntriesByType('navigation')[0]; return t.loadEventEnd - t.startTime;") / 1000
                    or time.perf_counter() - t0)
            out[page] = statistics.median(times)
    finally:
        driver.quit()
        site.stop()
    t = Table(title=f"驾驶舱页面加载时间（{n:,} 项数据资源，Chromium 无头模式，{rounds} 次中位数）")
    t.add_column("页面")
    t.add_column("秒", justify="right")
    for page, s in out.items():
        t.add_row(page, f"{s:.3f}")
    console.print(t)
    worst = max(out.values())
    console.print(f"最慢页面 {worst:.3f} 秒（目标 < 1 秒）：{'达标' if worst < 1 else '未达标'}")
    return out
