"""Formula injection (issue 11, point 6): the one rule every govlake workbook and CSV goes through.

Checked against the real writers: openpyxl (whose str starting with ``=`` becomes a formula cell unless we
say otherwise), the csv module and pyarrow's CSV writer, read back the way a spreadsheet would see them."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from openpyxl import Workbook, load_workbook

from govlake.exports import append_row, is_formula_like, safe_arrow_table, safe_cell, safe_row

HOSTILE = ['=HYPERLINK("http://x","y")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)", "\t=1", "\r=1",
           "  =1+1", "\u3000＝1+1", "＋1", "－1", "＠A1"]
HARMLESS = ["广州市天河区", "a=b", "1+1", "", "-3.5", "+86", "1e5", "— 无"]


def workbook_formulas(path: Path) -> list[str]:
    """Formula elements in the saved file itself (what Excel would evaluate), independent of openpyxl."""
    with zipfile.ZipFile(path) as z:
        sheets = {n: z.read(n) for n in z.namelist() if n.startswith("xl/worksheets/")}
    return [n for n, xml in sheets.items() if b"<f>" in xml or b"<f " in xml]


@pytest.mark.parametrize("value", HOSTILE)
def test_formula_like_text_is_recognised(value: str) -> None:
    assert is_formula_like(value)
    assert safe_cell(value) == "'" + value


@pytest.mark.parametrize("value", HARMLESS + [None, 3, -2.5, True])
def test_other_values_pass_unchanged(value) -> None:
    assert not is_formula_like(value)
    assert safe_cell(value) is value


def test_openpyxl_would_store_a_formula_and_append_row_does_not(tmp_path: Path) -> None:
    wb = Workbook()
    plain, safe = wb.active, wb.create_sheet("safe")
    plain.append(HOSTILE)
    append_row(safe, ["表头", *HOSTILE])
    append_row(safe, [1, None, 2.5, *HARMLESS])
    assert plain["A1"].data_type == "f"  # the hole: openpyxl's default for "=..."
    wb.remove(plain)
    wb.save(tmp_path / "x.xlsx")
    ws = load_workbook(tmp_path / "x.xlsx")["safe"]
    row = [c for c in ws[1]]
    # Exactly what was delivered, shown as text (XML itself reads a bare CR back as LF).
    assert [c.value for c in row] == ["表头", *(v.replace("\r", "\n") for v in HOSTILE)]
    assert all(c.data_type == "s" for c in row)
    assert all(c.quotePrefix for c in row[1:])  # Excel keeps them text even when a steward edits the cell
    assert [c.value for c in ws[2]][:3] == [1, None, 2.5] and ws["A2"].data_type == "n"
    assert not workbook_formulas(tmp_path / "x.xlsx")


def test_csv_cells_are_prefixed() -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(safe_row(HOSTILE))
    w.writerow(safe_row(HARMLESS))
    hostile, harmless = list(csv.reader(io.StringIO(buf.getvalue())))
    assert hostile == ["'" + v for v in HOSTILE]
    assert all(not is_formula_like(v) for v in hostile)
    assert harmless == HARMLESS


def test_arrow_tables_are_prefixed_like_python() -> None:
    t = pa.table({"=HYPERLINK(\"x\")": pa.array(HOSTILE + HARMLESS + [None]),
                  "big": pa.array(HOSTILE + HARMLESS + [None], pa.large_string()),
                  "n": pa.array(range(len(HOSTILE) + len(HARMLESS) + 1))})
    safe = safe_arrow_table(t)
    assert safe.column_names == ["'=HYPERLINK(\"x\")", "big", "n"]
    expected = [safe_cell(v) for v in HOSTILE + HARMLESS] + [None]
    assert safe.column(0).to_pylist() == expected and safe.column(1).to_pylist() == expected
    assert safe.column(2).to_pylist() == t.column(2).to_pylist() and safe.schema.field("big").type == pa.large_string()
    buf = io.BytesIO()
    pacsv.write_csv(safe, buf)
    rows = list(csv.reader(io.StringIO(buf.getvalue().decode())))
    assert not any(is_formula_like(v) for r in rows for v in r)
