"""Coded user messages: the Chinese texts that more than one place says, each written once.

Like dbt's event types (``core/dbt/events/types.py``: a code and a ``message()`` per event), a message here is
a code, a template saying what happened and a hint saying what to do. Only messages used in two or more places
belong here (tests/govlake/test_messages.py holds that); a message said once stays next to the code that
raises it, where it reads best. The code is for finding every use and for tests, not shown to users.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from govlake.errors import GovlakeError

E = TypeVar("E", bound=GovlakeError)


@dataclass(frozen=True)
class Message:
    code: str
    text: str  # str.format template: what happened
    hint: str = ""  # str.format template: what to do

    def error(self, cls: type[E], where: str | None = None, **values: object) -> E:
        """The error ``cls`` carrying this message, its hint and ``where``."""
        return cls(self.text.format(**values), where=where, hint=self.hint.format(**values) or None)


NOT_BUILT = Message("R001", "{what}尚未生成", "先运行 govlake run（或 govlake demo）")
"""A governance output (catalog, duties-data list, indicators) asked for before any run built it."""

UNKNOWN_ROLE = Message("A001", "未知角色：{role}", "可选角色：{roles}")
"""A SQL session or export for a role that does not exist."""

EMPTY_DELIVERY = Message("I001", "文件为空，没有表头", "确认导出是否成功后重新报送")
"""A delivered CSV without even a header line (both CSV readers)."""

OVERSIZED_CELL_HINT = "检查该单元格是否误存了大段文本或损坏的数据，修正后重新报送"
"""What to do about a cell over the size limit (CSV and Excel readers; the message itself names row and column)."""

CATALOGUE = (NOT_BUILT, UNKNOWN_ROLE, EMPTY_DELIVERY)

__all__ = ["CATALOGUE", "EMPTY_DELIVERY", "Message", "NOT_BUILT", "OVERSIZED_CELL_HINT", "UNKNOWN_ROLE"]
