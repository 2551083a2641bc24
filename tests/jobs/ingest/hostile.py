"""Hostile deliveries for ``hukou_population``: hand-made cases for every class of broken or malicious file
issue 11 found, plus seeded random mutations of valid deliveries of every supported format.

Each ``Case`` knows how to write its file and what ingest must do with it: ``refused``, ``accepted`` with
an exact row count, or ``either`` (a random mutation may or may not still be a readable delivery; either
way it must be accepted whole or refused cleanly). Files are built lazily (some are tens of MB).
"""

from __future__ import annotations

import io
import json
import random
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from govlake.devkit.writers import column_letter
from tests.factories import ric_number

DATASET, NODE = "hukou_population", "gaj"
HEADER = ["公民身份号码", "姓名", "性别", "出生日期", "户籍地行政区划", "住址", "登记日期"]
BOM = b"\xef\xbb\xbf"


def rows(n: int, start: int = 0) -> list[list[str]]:
    """``n`` plausible records with valid, distinct ID numbers."""
    out = []
    for i in range(start, start + n):
        rid = ric_number("440106", f"19{60 + i % 40:02d}0{1 + i % 9}1{i % 9}", f"{i % 1000:03d}")
        out.append([rid, f"测试{i}", "男" if i % 2 else "女", f"19{60 + i % 40:02d}-0{1 + i % 9}-1{i % 9}", "440106",
                    f"广州市天河区测试路{i}号", "2020-01-02"])
    return out


@dataclass
class Case:
    name: str
    ext: str
    build: Callable[[], bytes] | Callable[[Path], None]
    expect: str  # refused | accepted | either
    rows: int | None = None  # exact bronze rows when accepted and computable
    streams: bool = False  # build writes the file itself (large files, not held in memory)

    def write(self, directory: Path) -> Path:
        path = directory / f"{self.name}.{self.ext}"
        if self.streams:
            self.build(path)  # type: ignore[call-arg]
        else:
            path.write_bytes(self.build())  # type: ignore[call-arg]
        return path


# -- valid deliveries (the seeds of the mutations) ----------------------------------------------

def csv_bytes(header: list[str], body: list[list[str]], encoding: str = "utf-8", newline: bool = True) -> bytes:
    import csv

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(body)
    text = buf.getvalue()
    return (text if newline else text.rstrip("\n")).encode(encoding)


def jsonl_bytes(body: list[list[str]], header: list[str] = HEADER) -> bytes:
    return "".join(json.dumps(dict(zip(header, r)), ensure_ascii=False) + "\n" for r in body).encode("utf-8")


def xlsx_bytes(table: list[list[object]]) -> bytes:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    for r in table:
        ws.append(r)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def xlsx_sheets(sheets: dict[str, list[list[object]]]) -> bytes:
    """A workbook of several sheets, in order (values starting with ``=`` are formulas, saved by openpyxl
    without a cached value, as any program that never ran Excel's calculation writes them)."""
    from openpyxl import Workbook

    wb = Workbook()
    wb.remove(wb.active)
    for title, table in sheets.items():
        ws = wb.create_sheet(title)
        for r in table:
            ws.append(r)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def parquet_bytes(table: pa.Table, **kw: object) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, **kw)
    return buf.getvalue()


def text_table(body: list[list[str]]) -> pa.Table:
    return pa.table({h: [r[i] for r in body] for i, h in enumerate(HEADER)})


# -- XLSX surgery ---------------------------------------------------------------------------------

_SHEET = "xl/worksheets/sheet1.xml"


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {i.filename: zf.read(i.filename) for i in zf.infolist()}


def rezip(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, body in members.items():
            zf.writestr(name, body)
    return buf.getvalue()


def with_sheet(sheet_xml: bytes) -> bytes:
    """A valid workbook whose first sheet is replaced by ``sheet_xml``."""
    m = _members(xlsx_bytes([HEADER, *rows(2)]))
    m[_SHEET] = sheet_xml
    return rezip(m)


def sheet_xml(cells_rows: list[str], dimension: str | None = None, prolog: str = "") -> bytes:
    dim = f'<dimension ref="{dimension}"/>' if dimension else ""
    body = "".join(cells_rows)
    return (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>{prolog}'
            '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
            f"{dim}<sheetData>{body}</sheetData></worksheet>").encode("utf-8")


def xml_row(r: int, values: list[str]) -> str:
    cells = "".join(f'<c r="{column_letter(i)}{r}" t="inlineStr"><is><t>{v}</t></is></c>' for i, v in enumerate(values))
    return f'<row r="{r}">{cells}</row>'


def xlsx_one_huge_cell(path: Path, inflated: int = 300 << 20) -> None:
    """A small XLSX whose shared string inflates to ``inflated`` bytes (written streaming)."""
    base = _members(xlsx_bytes([HEADER, *rows(1)]))
    sst = ('<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
           ' count="1" uniqueCount="1"><si><t>').encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, body in base.items():
            if name != "xl/sharedStrings.xml":
                zf.writestr(name, body)
        with zf.open("xl/sharedStrings.xml", "w", force_zip64=True) as fh:
            fh.write(sst)
            chunk = b"A" * (1 << 20)
            for _ in range(inflated >> 20):
                fh.write(chunk)
            fh.write(b"</t></si></sst>")


def unsupported_compression(data: bytes) -> bytes:
    """Mark the sheet as compressed with method 97 (WavPack): zipfile raises NotImplementedError."""
    out = bytearray(data)
    name = _SHEET.encode()
    for sig, method_at in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        i = out.find(sig)
        while i >= 0:
            name_at = i + (30 if sig == b"PK\x03\x04" else 46)
            if out[name_at:name_at + len(name)] == name:
                out[i + method_at:i + method_at + 2] = struct.pack("<H", 97)
            i = out.find(sig, i + 4)
    return bytes(out)


def corrupt_deflate(data: bytes) -> bytes:
    """Garble the deflate stream of the sheet (zlib.error or a bad CRC when read)."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        info = zf.getinfo(_SHEET)
    out = bytearray(data)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for k in range(start + 2, min(start + info.compress_size, start + 40)):
        out[k] = 0xFF
    return bytes(out)


# -- Parquet with a bad second row group --------------------------------------------------------

def parquet_bad_utf8_late() -> bytes:
    """500,001 fine rows, then a binary name that is not UTF-8: found after the first 500,000-row batch,
    inside delta-rs's write."""
    n = 500_001
    schema = pa.schema([("公民身份号码", pa.string()), ("姓名", pa.binary())])
    good = pa.table({"公民身份号码": pa.array([str(i) for i in range(n)]), "姓名": pa.array([b"a"] * n, pa.binary())},
                    schema=schema)
    bad = pa.table({"公民身份号码": ["x1", "x2"], "姓名": pa.array([b"ok", b"\xff\xfe"], pa.binary())}, schema=schema)
    buf = io.BytesIO()
    with pq.ParquetWriter(buf, schema) as w:
        w.write_table(good)
        w.write_table(bad)
    return buf.getvalue()


# -- large files whose problem lies past the first batch ------------------------------------------

def csv_bad_utf8_after_32mb(path: Path) -> None:
    line = ",".join(rows(1)[0]).encode() + b"\n"
    with path.open("wb") as fh:
        fh.write(",".join(HEADER).encode() + b"\n")
        for _ in range((33 << 20) // len(line)):
            fh.write(line)
        fh.write(b"440106199003071234,\xff\xfe\xc0,\n")


def csv_bad_gb18030_after_32mb(path: Path) -> None:
    line = ",".join(rows(1)[0]).encode("gb18030") + b"\n"
    with path.open("wb") as fh:
        fh.write(",".join(HEADER).encode("gb18030") + b"\n")
        for _ in range((33 << 20) // len(line)):
            fh.write(line)
        fh.write(b"440106199003071234,\x81\x30\xff\xff,\n")


def jsonl_bad_utf8_late(path: Path) -> None:
    line = json.dumps({"公民身份号码": rows(1)[0][0], "姓名": "甲"}, ensure_ascii=False).encode() + b"\n"
    with path.open("wb") as fh:
        for _ in range(520_000):
            fh.write(line)
        fh.write(b'{"\xe5\x85\xac\xe6\xb0\x91\xe8\xba\xab\xe4\xbb\xbd\xe5\x8f\xb7\xe7\xa0\x81": "\xff"}\n')


# -- the hand-made cases ----------------------------------------------------------------------------

def _deep(n: int) -> bytes:
    return ('{"公民身份号码": "' + rows(1)[0][0] + '", "住址": ' + "[" * n + "1" + "]" * n + "}\n").encode()


def hand_made(large: bool = True) -> list[Case]:
    r3 = rows(3)
    good_csv = csv_bytes(HEADER, r3)
    gb = csv_bytes(HEADER, rows(3000), encoding="gb18030")  # > 64 KB: detection settles on GB18030
    cases = [
        # CSV
        Case("csv_header_field_200k", "csv", lambda: csv_bytes([*HEADER, "备" * 200_000], r3), "refused"),
        Case("csv_value_40k", "csv", lambda: csv_bytes(HEADER, [*r3[:2], [r3[2][0], "x" * 40_000, *r3[2][2:]]]), "refused"),
        Case("csv_value_at_limit", "csv", lambda: csv_bytes(HEADER, [[r3[0][0], "x" * 32_767, *r3[0][2:]]]), "accepted", 1),
        Case("csv_utf8_bom_on_gb18030", "csv", lambda: BOM + csv_bytes(HEADER, r3, encoding="gb18030"), "refused"),
        Case("csv_lone_surrogate_bytes", "csv", lambda: good_csv.replace("测试1".encode(), b"\xed\xa0\x80"), "refused"),
        Case("csv_lone_surrogate_late", "csv", lambda: csv_bytes(HEADER, rows(2000)) + b"1,\xed\xa0\x80\n", "refused"),
        Case("csv_gb18030_bad_byte_midway", "csv", lambda: gb[:100_000] + b"\x81\x30\xff\xff" + gb[100_000:], "refused"),
        Case("csv_gb18030_truncated_char", "csv", lambda: gb + b"\x81", "refused"),
        Case("csv_header_only_no_newline", "csv", lambda: ",".join(HEADER).encode(), "accepted", 0),
        Case("csv_header_only_newline", "csv", lambda: (",".join(HEADER) + "\n").encode(), "accepted", 0),
        Case("csv_header_only_bom_no_newline", "csv", lambda: BOM + ",".join(HEADER).encode(), "accepted", 0),
        Case("csv_header_only_gb18030", "csv", lambda: ",".join(HEADER).encode("gb18030"), "accepted", 0),
        Case("csv_headerless", "csv", lambda: csv_bytes(r3[0], r3[1:]), "refused"),
        Case("csv_quoted_newline_in_header", "csv", lambda: csv_bytes(["公民身份号码", "姓\n名", *HEADER[2:]], r3), "accepted", 3),
        Case("csv_duplicate_and_empty_headers", "csv", lambda: csv_bytes([*HEADER, "备注", "备注", ""],
                                                                       [[*r, "a", "b", "c"] for r in r3]), "accepted", 3),
        Case("csv_empty", "csv", lambda: b"", "refused"),
        Case("csv_only_bom", "csv", lambda: BOM, "refused"),
        Case("csv_only_newlines", "csv", lambda: b"\n\r\n\n", "refused"),
        Case("csv_nul_bytes", "csv", lambda: good_csv.replace("测试".encode(), b"\x00\x00"), "accepted", 3),
        Case("csv_unterminated_quote", "csv", lambda: good_csv + b'"440106199003071234,open\n' + good_csv, "either"),
        Case("csv_2000_columns", "csv", lambda: csv_bytes([*HEADER, *(f"c{i}" for i in range(2000))], r3), "refused"),
        Case("csv_crlf_and_cr", "csv", lambda: good_csv.replace(b"\n", b"\r\n"), "accepted", 3),
        Case("csv_ragged_rows", "csv", lambda: good_csv + b"1,2\n" + b",".join([b"x"] * 12) + b"\n", "accepted", 5),
        Case("csv_binary_garbage", "csv", lambda: random.Random(1).randbytes(20_000), "refused"),
        Case("csv_semicolon_separated", "csv", lambda: good_csv.replace(b",", b";"), "refused"),
        # JSON Lines
        Case("jsonl_nested_100k", "jsonl", lambda: jsonl_bytes(r3) + _deep(100_000), "refused"),
        Case("jsonl_nested_40", "jsonl", lambda: _deep(40) + jsonl_bytes(r3), "refused"),
        Case("jsonl_nested_3", "jsonl", lambda: _deep(3) + jsonl_bytes(r3), "accepted", 4),
        Case("jsonl_bom", "jsonl", lambda: BOM + jsonl_bytes(r3), "accepted", 3),
        Case("jsonl_lone_surrogate_escape", "jsonl",
             lambda: jsonl_bytes(r3) + b'{"\\u516c\\u6c11\\u8eab\\u4efd\\u53f7\\u7801": "\\ud800"}\n', "accepted", 4),
        Case("jsonl_surrogate_key", "jsonl", lambda: b'{"\\udfff": 1}\n' + jsonl_bytes(r3), "accepted", 4),
        Case("jsonl_invalid_utf8", "jsonl", lambda: jsonl_bytes(r3) + b'{"a": "\xff"}\n', "refused"),
        Case("jsonl_line_17mb", "jsonl", lambda: jsonl_bytes(r3) + b'{"a": "' + b"x" * (17 << 20) + b'"}\n', "refused"),
        Case("jsonl_value_40k", "jsonl", lambda: jsonl_bytes([[r3[0][0], "x" * 40_000]], HEADER[:2]), "refused"),
        Case("jsonl_not_objects", "jsonl", lambda: jsonl_bytes(r3) + b"[1,2]\n42\n\"s\"\nnull\n{broken\n", "accepted", 8),
        Case("jsonl_huge_int", "jsonl", lambda: jsonl_bytes(r3) + b'{"\\u59d3\\u540d": ' + b"9" * 5000 + b"}\n", "accepted", 4),
        Case("jsonl_2000_keys", "jsonl", lambda: json.dumps({**dict(zip(HEADER, r3[0])), **{f"k{i}": i for i in range(2000)}},
                                                          ensure_ascii=False).encode() + b"\n", "refused"),
        Case("jsonl_empty", "jsonl", lambda: b"", "refused"),
        Case("jsonl_gb18030", "jsonl", lambda: jsonl_bytes(r3).decode().encode("gb18030"), "refused"),
        Case("jsonl_nan_infinity", "jsonl", lambda: jsonl_bytes(r3) + b'{"\\u59d3\\u540d": NaN, "\\u6027\\u522b": -Infinity}\n',
             "accepted", 4),
        # XLSX
        Case("xlsx_cell_50k_random", "xlsx", lambda: with_sheet(sheet_xml([xml_row(1, HEADER), xml_row(2, [r3[0][0], "".join(
            random.Random(2).choice("甲乙丙丁戊己庚辛壬癸") for _ in range(50_000))])])), "refused"),
        Case("xlsx_zip_bomb_64mb", "xlsx", lambda p: xlsx_one_huge_cell(p, 64 << 20), "refused", streams=True),
        Case("xlsx_corrupt_sheet_xml", "xlsx", lambda: with_sheet(sheet_xml([xml_row(1, HEADER)])[:-40]), "refused"),
        Case("xlsx_sheet_not_xml", "xlsx", lambda: with_sheet(b"\x00\x01garbage" * 100), "refused"),
        Case("xlsx_zlib_error", "xlsx", lambda: corrupt_deflate(xlsx_bytes([HEADER, *r3])), "refused"),
        Case("xlsx_not_implemented_compression", "xlsx", lambda: unsupported_compression(xlsx_bytes([HEADER, *r3])), "refused"),
        Case("xlsx_billion_laughs", "xlsx", lambda: with_sheet(sheet_xml(
            [xml_row(1, HEADER), xml_row(2, [r3[0][0], "&lol9;"])],
            prolog='<!DOCTYPE worksheet [<!ENTITY lol "lol">'
                   + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10))
                   + "]>")), "refused"),
        Case("xlsx_xxe", "xlsx", lambda: with_sheet(sheet_xml(
            [xml_row(1, HEADER), xml_row(2, [r3[0][0], "&xxe;"])],
            prolog='<!DOCTYPE worksheet [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>')), "refused"),
        Case("xlsx_dimension_lies", "xlsx", lambda: with_sheet(sheet_xml(
            [xml_row(i + 1, v) for i, v in enumerate([HEADER, *r3])], dimension="A1:B2")), "accepted", 3),
        Case("xlsx_row_index_huge", "xlsx", lambda: with_sheet(sheet_xml(
            [xml_row(1, HEADER), xml_row(2, r3[0]), xml_row(999_999_999, r3[1])])), "refused"),
        Case("xlsx_16384_columns", "xlsx", lambda: with_sheet(sheet_xml(
            [xml_row(1, HEADER), xml_row(2, r3[0]) [:-6] + '<c r="XFD2" t="inlineStr"><is><t>x</t></is></c></row>'])),
             "refused"),
        Case("xlsx_note_between_rows", "xlsx", lambda: xlsx_bytes([HEADER, r3[0], ["备注：以下为补报"], r3[1], r3[2]]),
             "accepted", 4),
        Case("xlsx_total_then_data", "xlsx", lambda: xlsx_bytes([HEADER, r3[0], ["合计", 1], r3[1], ["制表人：某某"]]),
             "accepted", 3),
        Case("xlsx_duplicate_headers", "xlsx", lambda: xlsx_bytes([[*HEADER, "备注", None, "备注"],
                                                                  *([*r, "a", "b", "c"] for r in r3)]), "accepted", 3),
        Case("xlsx_not_a_zip", "xlsx", lambda: good_csv, "refused"),
        Case("xlsx_no_header", "xlsx", lambda: xlsx_bytes([["x"], ["y"]]), "refused"),
        Case("xlsx_no_workbook_part", "xlsx", lambda: rezip({k: v for k, v in _members(xlsx_bytes([HEADER, *r3])).items()
                                                             if k != "xl/workbook.xml"}), "refused"),
        Case("xlsx_empty_zip", "xlsx", lambda: rezip({}), "refused"),
        Case("xlsx_truncated", "xlsx", lambda: xlsx_bytes([HEADER, *r3])[:3000], "refused"),
        # Parquet
        Case("parquet_struct_column", "parquet", lambda: parquet_bytes(text_table(r3).append_column(
            "地址信息", pa.array([{"a": 1}] * 3))), "refused"),
        Case("parquet_list_column", "parquet", lambda: parquet_bytes(text_table(r3).append_column(
            "电话", pa.array([["1", "2"]] * 3))), "refused"),
        Case("parquet_map_column", "parquet", lambda: parquet_bytes(text_table(r3).append_column(
            "标签", pa.array([[("k", "v")]] * 3, pa.map_(pa.string(), pa.string())))), "refused"),
        Case("parquet_invalid_utf8_binary", "parquet", lambda: parquet_bytes(pa.table({
            "公民身份号码": [r[0] for r in r3], "姓名": pa.array([b"\xff", b"ok", b"\xc0\x80"], pa.binary())})), "refused"),
        Case("parquet_bad_utf8_second_row_group", "parquet", parquet_bad_utf8_late, "refused"),
        Case("parquet_truncated", "parquet", lambda: parquet_bytes(text_table(r3))[:-30], "refused"),
        Case("parquet_not_parquet", "parquet", lambda: good_csv, "refused"),
        Case("parquet_int_and_timestamp", "parquet", lambda: parquet_bytes(text_table(r3).set_column(
            4, "户籍地行政区划", pa.array([440106] * 3)).set_column(6, "登记日期", pa.array(
                [0, 10 ** 15, None], pa.timestamp("us")))), "accepted", 3),
        Case("parquet_no_rows", "parquet", lambda: parquet_bytes(text_table([])), "accepted", 0),
        Case("parquet_2000_columns", "parquet", lambda: parquet_bytes(pa.table(
            {**{h: [r[i] for r in r3] for i, h in enumerate(HEADER)}, **{f"c{i}": [1, 2, 3] for i in range(2000)}})),
             "refused"),
        Case("parquet_value_40k", "parquet", lambda: parquet_bytes(pa.table({"公民身份号码": [r3[0][0]], "姓名": ["x" * 40_000]})),
             "refused"),
        Case("parquet_dictionary_encoded", "parquet", lambda: parquet_bytes(text_table(r3 * 50).set_column(
            2, "性别", pa.array(["男", "女", "男"] * 50).dictionary_encode())), "accepted", 150),
    ]
    if large:
        cases += [
            Case("csv_bad_utf8_after_32mb", "csv", csv_bad_utf8_after_32mb, "refused", streams=True),
            Case("csv_bad_gb18030_after_32mb", "csv", csv_bad_gb18030_after_32mb, "refused", streams=True),
            Case("jsonl_bad_utf8_after_first_batch", "jsonl", jsonl_bad_utf8_late, "refused", streams=True),
        ]
    return cases


# -- seeded random mutations of valid deliveries ----------------------------------------------------

def seeds() -> dict[str, tuple[str, bytes]]:
    """Valid deliveries of every supported format (name -> (extension, bytes))."""
    body = rows(40)
    return {
        "csv_utf8": ("csv", csv_bytes(HEADER, body)),
        "csv_utf8_bom": ("csv", BOM + csv_bytes(HEADER, body)),
        "csv_gb18030": ("csv", csv_bytes(HEADER, body, encoding="gb18030")),
        "jsonl": ("jsonl", jsonl_bytes(body)),
        "xlsx": ("xlsx", xlsx_bytes([["广州市公安局 户籍人口信息"], HEADER, *body, ["合计：40条"]])),
        "parquet": ("parquet", parquet_bytes(text_table(body))),
        "parquet_dict": ("parquet", parquet_bytes(text_table(body), use_dictionary=True, compression="snappy")),
    }


MUTATIONS = ("flip", "truncate", "bom", "nul", "surrogate", "huge_field", "duplicate_chunk", "delete_chunk",
             "newline", "quote")


def mutate(data: bytes, kind: str, rng: random.Random) -> bytes:
    b = bytearray(data)
    at = rng.randrange(len(b)) if b else 0
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        del b[at:]
    elif kind == "bom":
        b[at:at] = BOM
    elif kind == "nul":
        b[at:at] = b"\x00" * rng.randint(1, 4)
    elif kind == "surrogate":
        b[at:at] = rng.choice([b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\\ud800", b"\x80", b"\xc0\xaf"])
    elif kind == "huge_field":
        b[at:at] = rng.choice([b"x", "甲".encode()]) * rng.choice([40_000, 140_000])
    elif kind == "duplicate_chunk":
        n = rng.randint(1, 200)
        b[at:at] = b[max(at - n, 0):at]
    elif kind == "delete_chunk":
        del b[at:at + rng.randint(1, 200)]
    elif kind == "newline":
        b[at:at] = rng.choice([b"\n", b"\r", b'"\n"'])
    elif kind == "quote":
        b[at:at] = b'"'
    return bytes(b)


def mutated(count: int, seed: int = 20261202) -> list[Case]:
    """``count`` distinct random mutations spread over every seed delivery and mutation kind."""
    rng = random.Random(seed)
    base = seeds()
    names = sorted(base)
    out: list[Case] = []
    seen: set[int] = set()
    i = 0
    while len(out) < count:
        src = names[i % len(names)]
        kind = MUTATIONS[(i // len(names)) % len(MUTATIONS)]
        i += 1
        ext, data = base[src]
        m = mutate(data, kind, random.Random(rng.getrandbits(64)))
        h = zlib.crc32(m) ^ len(m) << 32
        if h in seen or m == data:
            continue
        seen.add(h)
        out.append(Case(f"mut{len(out):03d}-{src}-{kind}", ext, (lambda m=m: m), "either"))
    return out


def corpus(mutations: int = 160, large: bool = True) -> list[Case]:
    return hand_made(large) + mutated(mutations)
