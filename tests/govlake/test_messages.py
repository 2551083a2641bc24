"""The coded message catalogue (govlake/messages.py): unique codes, only messages said in 2+ places, and the
messages reach the user unchanged through the real surfaces."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from govlake import messages
from govlake.access.sql import ROLES, SqlSession
from govlake.cli import main
from govlake.errors import AccessDenied

PROJECT = Path(__file__).resolve().parents[2]
SOURCES = [p for folder in ("govlake", "jobs", "dags") for p in (PROJECT / folder).rglob("*.py") if p.name != "messages.py"]


def uses(name: str) -> int:
    """Lines outside the catalogue that use the entry (imports not counted)."""
    word = re.compile(rf"\b{name}\b")
    return sum(1 for p in SOURCES for line in p.read_text(encoding="utf-8").splitlines()
               if word.search(line) and not line.lstrip().startswith(("from ", "import ")))


def test_codes_are_unique_and_every_entry_is_used_twice() -> None:
    codes = [m.code for m in messages.CATALOGUE]
    assert len(codes) == len(set(codes))
    entries = [n for n in messages.__all__ if n not in ("CATALOGUE", "Message")]
    assert {n: uses(n) for n in entries if uses(n) < 2} == {}


def test_a_coded_message_reaches_the_user(ctx) -> None:
    out = CliRunner().invoke(main, ["duties", "--lake", ctx.settings.lake_root])
    assert out.exit_code == 2 and "职能数据清单尚未生成" in out.output and "先运行 govlake run" in out.output
    with pytest.raises(AccessDenied) as denied:
        SqlSession(ctx.lake, "intern")
    assert str(denied.value) == "未知角色：intern\n处理建议：可选角色：" + ", ".join(ROLES)
