"""File formats for ``govlake generate``: how departments actually hand data over.

* CSV in UTF-8 (with or without BOM) or GB18030, written by pyarrow in chunks (GB18030 by re-encoding each
  chunk); optionally with a few ragged lines (one field too many or too few).
* XLSX as a government export: 1–3 title rows, the header, the data, then footer rows (合计/制表人/审核人).
  ID numbers can be saved as Excel numbers (they come back as 4.40106199003071e+17). The workbook is
  byte-reproducible: fixed document properties and fixed ZIP entry timestamps.
* JSON Lines with the Chinese headers as keys.
* Parquet with string columns, or integer/decimal columns where the values are clean numbers.

Every writer takes Arrow tables of *text* columns (already in header order) and never reorders rows.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

FIXED_TIME = (2026, 11, 20, 0, 0, 0)
_PLAIN_NUMBER = re.compile(r"^-?\d{1,15}(\.\d{1,6})?$")


def _header_line(header: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(header)
    return buf.getvalue()


class CsvWriter:
    def __init__(self, path: Path, header: list[str], encoding: str = "utf-8", bom: bool = False,
                 quote_all: bool = True) -> None:
        self.path = path
        self.encoding = encoding
        self.fh = path.open("wb")
        if bom:
            self.fh.write(b"\xef\xbb\xbf")
        self.fh.write(_header_line(header).encode(encoding))
        self.quote = "needed" if quote_all else "none"
        self.width = len(header)

    def write(self, table: pa.Table, ragged: np.ndarray | None = None, ragged_mode: np.ndarray | None = None) -> None:
        """``ragged``: row positions (within this table) to write with one field too many (``ragged_mode``
        True) or too few; the other rows go through pyarrow's CSV writer in between."""
        rows = np.sort(np.asarray(ragged if ragged is not None else [], dtype=np.int64))
        more = np.ones(len(rows), dtype=bool) if ragged_mode is None else np.asarray(ragged_mode, dtype=bool)
        more = more[np.argsort(np.asarray(ragged if ragged is not None else [], dtype=np.int64))] if len(rows) else more
        start = 0
        for r, add in zip(rows.tolist(), more.tolist()):
            self._emit(self._csv(table.slice(start, r - start)))
            self._emit(self._ragged_line(table.slice(r, 1), add))
            start = r + 1
        self._emit(self._csv(table.slice(start)))

    def _csv(self, table: pa.Table):
        if table.num_rows == 0:
            return b""
        buf = pa.BufferOutputStream()
        try:
            pacsv.write_csv(table, buf, pacsv.WriteOptions(include_header=False, quoting_style=self.quote))
        except pa.ArrowInvalid:  # a value needs quotes: quote from here on
            self.quote = "needed"
            buf = pa.BufferOutputStream()
            pacsv.write_csv(table, buf, pacsv.WriteOptions(include_header=False, quoting_style=self.quote))
        return buf.getvalue()

    def _ragged_line(self, row: pa.Table, add: bool) -> bytes:
        line = bytes(self._csv(row)).rstrip(b"\n")
        if add or self.width < 2 or b"," not in line:
            return line + b",\n"
        return line[: line.rfind(b",")] + b"\n"

    def _emit(self, data) -> None:
        if not len(data):
            return
        if self.encoding != "utf-8":
            data = bytes(data).decode("utf-8").encode(self.encoding)
        self.fh.write(data)

    def close(self) -> None:
        self.fh.close()


class JsonlWriter:
    def __init__(self, path: Path, header: list[str]) -> None:
        import json

        self.fh = path.open("wb")
        self.keys = [json.dumps(h, ensure_ascii=False) for h in header]

    @staticmethod
    def _escape(arr: pa.Array) -> pa.Array:
        for a, b in (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
            arr = pc.replace_substring(arr, a, b)
        return arr

    def write(self, table: pa.Table) -> None:
        n = table.num_rows
        if n == 0:
            return
        parts: list = []
        for i, (key, col) in enumerate(zip(self.keys, table.columns)):
            col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
            val = pc.if_else(pc.is_null(col), "null",
                             pc.binary_join_element_wise('"', self._escape(col.cast(pa.string())), '"', ""))
            parts.extend([("{" if i == 0 else ",") + key + ":", val])
        parts.append("}\n")
        arrays = [p if isinstance(p, pa.Array) else pa.array([p] * n, pa.string()) for p in parts]
        lines = pc.binary_join_element_wise(*arrays, "")
        offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)[lines.offset: lines.offset + n + 1]
        self.fh.write(lines.buffers()[2].to_pybytes()[offsets[0]: offsets[-1]])

    def close(self) -> None:
        self.fh.close()


class ParquetFileWriter:
    def __init__(self, path: Path, header: list[str], types: list[pa.DataType]) -> None:
        self.schema = pa.schema([pa.field(h, t) for h, t in zip(header, types)])
        self.writer = pq.ParquetWriter(path, self.schema, compression="snappy")

    def write(self, table: pa.Table) -> None:
        cols = []
        for col, fld in zip(table.columns, self.schema):
            cols.append(col.cast(fld.type) if fld.type != pa.string() else col)
        self.writer.write_table(pa.Table.from_arrays(cols, schema=self.schema))

    def close(self) -> None:
        self.writer.close()


_XML_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
_CT = "application/vnd.openxmlformats-officedocument.spreadsheetml"


def column_letter(i: int) -> str:
    s = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        s = chr(65 + r) + s
    return s


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _esc_arr(arr: pa.Array) -> pa.Array:
    for a, b in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;")):
        arr = pc.replace_substring(arr, a, b)
    return arr


class XlsxWriter:
    """A government-style export: title rows, header, data, footer rows.

    The sheet XML is built column-wise with pyarrow (inline strings, numbers as ``<v>``), about ten times
    faster than openpyxl's pure-Python serializer, and packed with fixed timestamps so the file is
    byte-reproducible. openpyxl and Excel read it like any other workbook.
    """

    def __init__(self, path: Path, header: list[str], title_rows: list[str], sheet: str = "Sheet1") -> None:
        self.path = path
        self.sheet = re.sub(r"[\\/*?:\[\]]", "", sheet)[:31] or "Sheet1"
        self.width = len(header)
        self.parts: list[bytes] = []
        self.row = 0
        for t in title_rows:
            self._python_row([t])
        self._python_row(header)

    def _python_row(self, values: list) -> None:
        self.row += 1
        cells = []
        for j, v in enumerate(values):
            if v is None or v == "":
                continue
            ref = f"{column_letter(j)}{self.row}"
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                cells.append(f'<c r="{ref}"><v>{repr(v) if isinstance(v, float) else v}</v></c>')
            else:
                cells.append(f'<c r="{ref}" t="inlineStr"><is><t xml:space="preserve">{_esc(str(v))}</t></is></c>')
        self.parts.append(f'<row r="{self.row}">{"".join(cells)}</row>'.encode())

    def write(self, table: pa.Table, numeric: set[int] | None = None,
              as_float: dict[int, np.ndarray] | None = None) -> None:
        """``numeric``: columns whose plain numbers are saved as Excel numbers; ``as_float``: per column, the
        rows whose (ID number) text Excel turned into a double (15 significant digits)."""
        n = table.num_rows
        if n == 0:
            return
        numeric = numeric or set()
        as_float = as_float or {}
        rownums = pa.array(np.arange(self.row + 1, self.row + n + 1)).cast(pa.string())
        parts: list = ["<row r=\"", rownums, "\">"]
        for j, col in enumerate(table.columns):
            col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
            col = col.cast(pa.string())
            letter = column_letter(j)
            text = pc.binary_join_element_wise(f'<c r="{letter}', rownums,
                                               '" t="inlineStr"><is><t xml:space="preserve">', _esc_arr(col),
                                               "</t></is></c>", "")
            if j in numeric:
                plain = pc.fill_null(pc.match_substring_regex(col, _PLAIN_NUMBER.pattern), False)
                num = pc.binary_join_element_wise(f'<c r="{letter}', rownums, '"><v>',
                                                  _excel_numbers(col), "</v></c>", "")
                text = pc.if_else(plain, num, text)
            if j in as_float and as_float[j].any():
                mask = as_float[j]
                vals = col.to_pylist()
                floats = [repr(float(f"{int(v):.15g}")) if m and v and v.isdigit() else None
                          for v, m in zip(vals, mask)]
                fl = pa.array(floats, pa.string())
                num = pc.binary_join_element_wise(f'<c r="{letter}', rownums, '"><v>', fl, "</v></c>", "")
                text = pc.if_else(pc.is_valid(fl), num, text)
            parts.append(pc.if_else(pc.is_null(col), "", text))
        parts.append("</row>")
        arrays = [p if isinstance(p, pa.Array) else pa.array([p] * n, pa.string()) for p in parts]
        rows = pc.binary_join_element_wise(*arrays, "")
        offsets = np.frombuffer(rows.buffers()[1], dtype=np.int32)[rows.offset: rows.offset + n + 1]
        self.parts.append(rows.buffers()[2].to_pybytes()[offsets[0]: offsets[-1]])
        self.row += n

    def close(self, footer_rows: list[list[str]]) -> None:
        self.row += 1  # a blank spacer row before the footer
        for r in footer_rows:
            self._python_row(r)
        sheet = (_XML_HEAD + f'<worksheet xmlns="{_NS}"><sheetData>').encode() + b"".join(self.parts) + \
            b"</sheetData></worksheet>"
        files = {
            "[Content_Types].xml": (
                _XML_HEAD + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
                '<Default Extension="xml" ContentType="application/xml"/>'
                f'<Override PartName="/xl/workbook.xml" ContentType="{_CT}.sheet.main+xml"/>'
                f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{_CT}.worksheet+xml"/>'
                f'<Override PartName="/xl/styles.xml" ContentType="{_CT}.styles+xml"/>'
                '<Override PartName="/docProps/core.xml" '
                'ContentType="application/vnd.openxmlformats-package.core-properties+xml"/></Types>'),
            "_rels/.rels": (
                _XML_HEAD + f'<Relationships xmlns="{_PKG_REL}">'
                f'<Relationship Id="rId1" Type="{_REL_NS}/officeDocument" Target="xl/workbook.xml"/>'
                '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/relationships/'
                'metadata/core-properties" Target="docProps/core.xml"/></Relationships>'),
            "docProps/core.xml": (
                _XML_HEAD + '<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/'
                'metadata/core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/" '
                'xmlns:dcterms="http://purl.org/dc/terms/" '
                'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><dc:creator>govlake</dc:creator>'
                '<dcterms:created xsi:type="dcterms:W3CDTF">2026-11-20T00:00:00Z</dcterms:created>'
                '<dcterms:modified xsi:type="dcterms:W3CDTF">2026-11-20T00:00:00Z</dcterms:modified>'
                '</cp:coreProperties>'),
            "xl/workbook.xml": (
                _XML_HEAD + f'<workbook xmlns="{_NS}" xmlns:r="{_REL_NS}"><sheets>'
                f'<sheet name="{_esc(self.sheet)}" sheetId="1" r:id="rId1"/></sheets></workbook>'),
            "xl/_rels/workbook.xml.rels": (
                _XML_HEAD + f'<Relationships xmlns="{_PKG_REL}">'
                f'<Relationship Id="rId1" Type="{_REL_NS}/worksheet" Target="worksheets/sheet1.xml"/>'
                f'<Relationship Id="rId2" Type="{_REL_NS}/styles" Target="styles.xml"/></Relationships>'),
            "xl/styles.xml": (
                _XML_HEAD + f'<styleSheet xmlns="{_NS}"><fonts count="1"><font><sz val="11"/><name val="宋体"/>'
                '</font></fonts><fills count="2"><fill><patternFill patternType="none"/></fill><fill>'
                '<patternFill patternType="gray125"/></fill></fills><borders count="1"><border><left/><right/>'
                '<top/><bottom/><diagonal/></border></borders><cellStyleXfs count="1"><xf numFmtId="0" fontId="0" '
                'fillId="0" borderId="0"/></cellStyleXfs><cellXfs count="1"><xf numFmtId="0" fontId="0" '
                'fillId="0" borderId="0" xfId="0"/></cellXfs><cellStyles count="1"><cellStyle name="常规" '
                'xfId="0" builtinId="0"/></cellStyles></styleSheet>'),
        }
        with zipfile.ZipFile(self.path, "w") as z:
            for name, text in files.items():
                _zip_write(z, name, text.encode("utf-8"))
            _zip_write(z, "xl/worksheets/sheet1.xml", sheet)


def _zip_write(z: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o600 << 16
    z.writestr(info, data, compresslevel=6)


def _excel_numbers(col: pa.Array) -> pa.Array:
    """Plain decimal text as Excel stores it (no trailing zeros after the point)."""
    t = pc.replace_substring_regex(col, r"(\.\d*?)0+$", r"\1")
    return pc.replace_substring_regex(t, r"\.$", "")
