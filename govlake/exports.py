"""Spreadsheet-safe exports: no delivered text becomes a live formula in Excel, WPS or LibreOffice.

Delivered file names, unknown column headers and cell values are chosen by whoever delivers a file. A
spreadsheet program evaluates a cell that starts with ``= + - @`` (or a tab / carriage return, which some
programs skip before such a character) as a formula: ``=HYPERLINK("http://x","y")`` becomes a phishing
link, ``=cmd|' /C calc'!A0`` a DDE call (OWASP "CSV Injection"). Every workbook and CSV govlake writes goes
through this module, so the rule lives in one place. It is library code: the pipeline's stewards' report
and catalog export use it as well as the consumers (SQL CSV output, the CLI's workbooks).

The rule:

- CSV: such a cell is prefixed with a single quote (``'=HYPERLINK(...)``), OWASP's recommendation; the
  quote shows, but nothing runs. The csv module then quotes the field as needed.
- XLSX (openpyxl): the value is kept exactly, stored as a string cell (openpyxl would otherwise store a
  leading ``=`` as a formula) with Excel's ``quotePrefix`` style, so even editing the cell keeps it text.

Leading whitespace (including the full-width space) is looked through, and the full-width ``＝＋－＠`` count
too (CJK input methods produce them). Plain numbers written as text (``-3.5``, ``+86``) are left alone: they
cannot carry a formula, and prefixing them would change data a steward sums.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

# One definition, in a syntax both Python's re and Arrow's RE2 accept (the characters are literal).
_SPACE = " \u3000\u00a0\n\f\v"
FORMULA_PATTERN = f"^[\t\r]|^[{_SPACE}\t\r]*[=+\\-@\uff1d\uff0b\uff0d\uff20]"
NUMBER_PATTERN = r"^[+-]?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?$"
_FORMULA = re.compile(FORMULA_PATTERN)
_NUMBER = re.compile(NUMBER_PATTERN)


def is_formula_like(value: Any) -> bool:
    """True for text a spreadsheet program would evaluate instead of showing."""
    return isinstance(value, str) and bool(_FORMULA.match(value)) and not _NUMBER.match(value)


def safe_cell(value: Any) -> Any:
    """A CSV field that a spreadsheet shows as text: formula-like text gets a leading ``'``, all else is
    returned unchanged (numbers, dates, None and ordinary text)."""
    return "'" + value if is_formula_like(value) else value


def safe_row(values: Iterable[Any]) -> list[Any]:
    """``safe_cell`` over one CSV row (header rows too: headers are delivered text as well)."""
    return [safe_cell(v) for v in values]


def append_row(ws: Any, values: Iterable[Any]) -> None:
    """``ws.append(values)`` for an openpyxl worksheet, with formula-like text stored as text.

    openpyxl turns any str starting with ``=`` into a formula cell (data_type ``f``); here such cells are
    reset to string cells and given ``quotePrefix`` so Excel keeps them text. The value itself is unchanged,
    so the workbook shows exactly what was delivered."""
    values = list(values)
    ws.append(values)
    row = ws.max_row
    for col, value in enumerate(values, 1):
        if is_formula_like(value):
            cell = ws.cell(row=row, column=col)
            cell.data_type = "s"
            cell.quotePrefix = True


def safe_arrow_table(table: Any) -> Any:
    """A pyarrow Table whose text columns went through ``safe_cell`` (for ``pyarrow.csv.write_csv``).

    Column names are escaped too. Only numbers and booleans are returned as they are (they cannot be
    formulas); every other column (binary, dictionary-encoded, UUID, dates with a negative year, nested ...)
    is written as its text, so that text goes through the rule too: the CSV writer would print it anyway."""
    import pyarrow as pa
    import pyarrow.compute as pc

    cols, names = [], []
    for field, col in zip(table.schema, table.columns):
        names.append(safe_cell(field.name))
        if not _is_inert(field.type):
            text = _as_text(col)
            risky = pc.and_(pc.match_substring_regex(text, FORMULA_PATTERN),
                            pc.invert(pc.match_substring_regex(text, NUMBER_PATTERN)))
            quote, empty = pa.scalar("'", pa.large_string()), pa.scalar("", pa.large_string())
            col = pc.if_else(risky, pc.binary_join_element_wise(quote, text, empty), text)
            if field.type in (pa.string(), pa.large_string()):
                col = col.cast(field.type)
        cols.append(col)
    return pa.Table.from_arrays(cols, names=names)


def _is_inert(arrow_type: Any) -> bool:
    """Types whose CSV text cannot start a formula (a minus sign before digits is a number, see above)."""
    import pyarrow as pa

    t = arrow_type
    return (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
            or pa.types.is_boolean(t) or pa.types.is_null(t))


def _as_text(col: Any) -> Any:
    """A column as large_string: Arrow's cast where it has one (the CSV writer's own text), else each value's
    ``str`` (bytes decoded as UTF-8 with ``\\x..`` escapes for invalid bytes)."""
    import pyarrow as pa

    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    try:
        return col.cast(pa.large_string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        pass

    def text(v: Any) -> str | None:
        if v is None:
            return None
        return v.decode("utf-8", "backslashreplace") if isinstance(v, bytes) else str(v)

    return pa.array([text(v) for v in col.to_pylist()], pa.large_string())


__all__ = ["FORMULA_PATTERN", "append_row", "is_formula_like", "safe_arrow_table", "safe_cell", "safe_row"]
