"""Format readers: every delivered file becomes a stream of Arrow batches of *text*, one column per
contract field, plus ``_extra`` (unmapped columns as JSON), ``_raw`` (the raw text of rows that did not fit
the header) and ``_row_number`` (1-based data row in the file).

Bronze keeps values exactly as delivered: no typing, no trimming, no repair. An Excel number stays the
number Excel holds (an 18-digit ID number saved as a number reads back as ``4.40106199003071e+17``).
Problems that make a whole file unusable raise ``DeliveryRefused`` before or during the stream; the ingest
job writes inside one Delta transaction, so a refused file leaves nothing behind.

Files are untrusted: every reader bounds what a file may make it allocate (the limits below) and turns any
failure of a third-party parser on a damaged file into a ``DeliveryRefused``. Refusal messages name the file,
the row number and the column, never a delivered value (a header-less file's "header" is a person's record).
"""

from __future__ import annotations

import codecs
import io
import itertools
import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from govlake.contracts import Contract, normalize_header
from govlake.errors import DeliveryRefused
from govlake.messages import EMPTY_DELIVERY, OVERSIZED_CELL_HINT
from govlake.redaction import scrub
from govlake.tables import BRONZE, BRONZE_READ_COLUMNS

FORMATS = {".csv": "csv", ".txt": "csv", ".xlsx": "xlsx", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
BATCH_ROWS = 500_000

# -- Limits on what one delivered file may make a reader allocate ---------------------------------
# Excel's own limit for one cell; no register field comes near it, so a longer value is a broken export or
# an attack (a 300 KB XLSX holding one 300 MB cell once made ingest allocate 3.9 GB and abort).
MAX_FIELD_CHARS = 32_767
# The raw text of a row that did not fit the header lands whole in one bronze value (``_raw``); a row of
# several maximal fields fits, a megabyte of text on one row is not a register record.
MAX_RAW_CHARS = 1 << 20
# A column name is a few words; a longer "header" is data (a header-less file) or garbage.
MAX_HEADER_CHARS = 1_000
# Contracts have at most a few dozen fields; Excel allows 16,384 columns. Wider rows are not registers and
# would multiply every per-row cost (openpyxl builds one tuple cell per column).
MAX_COLUMNS = 1_024
# Excel's row limit: an XLSX claiming more rows (openpyxl yields an empty row for every skipped row index,
# so ``<row r="999999999">`` alone would spin for minutes) is not an Excel export.
MAX_XLSX_ROWS = 1_048_576
# Uncompressed size of one XLSX zip member: a full Excel sheet of register data is well under this. The
# declared size bounds inflation (zipfile stops there and checks the CRC).
MAX_XLSX_MEMBER_BYTES = 1 << 30
# The shared-strings part is held in memory whole by openpyxl, so it gets a tighter bound.
MAX_SHARED_STRINGS_BYTES = 256 << 20
# Zip bombs: sheet XML compresses 5-20x; Apache POI refuses beyond 100x (its MIN_INFLATE_RATIO 0.01)
# for members past a small grace size, as we do.
MAX_COMPRESSION_RATIO = 100
RATIO_GRACE_BYTES = 1 << 20
# Uncompressed bytes of one Parquet row group (decoded whole per column chunk).
MAX_PARQUET_ROW_GROUP_BYTES = 1 << 30
# One JSON Lines record is read whole into memory before parsing.
MAX_RECORD_BYTES = 16 << 20
# JSON nesting: register values are scalars; a little nesting is kept as JSON text, deep nesting is an
# attack on recursive parsers (100,000 levels once crashed ingest).
MAX_JSON_DEPTH = 32
# CSV: pyarrow parses in blocks and refuses a record longer than one block, which bounds a row's memory.
CSV_BLOCK_BYTES = 32 << 20
# The first block is parsed once more just to count the header's columns.
CSV_PROBE_BYTES = 4 << 20
# Labels that open a footer line of a government export. They are also the project's own wording, so the
# redacted copy of a footer in the batch log keeps them legible ("（表尾）制表人：…").
FOOTER_LABELS = ("合计", "总计", "小计", "共计", "制表人", "制表", "审核人", "审核", "填报人", "填报单位", "填报", "备注",
                 "注", "说明", "数据来源", "导出时间", "导出", "打印时间", "打印")
# A footer label is a whole label: the whole cell, or followed by a colon or whitespace ("合计", "制表人：…",
# "打印时间 2026-…"); "打印厂职工养老院" is a unit's name, not the label 打印.
_FOOTER = re.compile(r"^\s*(?:合计|总计|小计|共计|制表人|制表|审核人|审核|填报人|填报单位|填报|备注|注|说明|数据来源|导出时间|导出"
                     r"|打印时间|打印)(?:\s*[:：]|\s|$)")


@dataclass
class HeaderMap:
    """How delivered columns map to contract fields, and what drifted."""

    headers: list[str]
    fields: list[str | None]  # per delivered column: the field it feeds, or None (extra)
    missing: list[str] = field(default_factory=list)

    @property
    def extra(self) -> list[str]:
        return [h for h, f in zip(self.headers, self.fields) if f is None]

    def as_dict(self) -> dict[str, str | None]:
        return dict(zip(self.headers, self.fields))


@dataclass
class Delivery:
    """What a reader learned about a file besides its rows (kept in the ingest batch log)."""

    format: str
    encoding: str | None = None
    header: HeaderMap | None = None
    skipped_lines: list[str] = field(default_factory=list)
    ragged_rows: int = 0


def output_schema(contract: Contract) -> pa.Schema:
    return pa.schema(
        [pa.field(f.name, pa.string()) for f in contract.fields]
        + BRONZE.arrow_fields(BRONZE_READ_COLUMNS)
    )


def refuse(message: str, path: Path, hint: str, where: str | None = None) -> DeliveryRefused:
    """A refusal naming the file (and, in ``where``, the row / column), never a delivered value."""
    return DeliveryRefused(message, where=where or str(path), hint=hint)


def unique_headers(headers: list[object]) -> list[str]:
    """Every delivered column keeps a distinct name, so no value is lost to a duplicate or empty header:
    an empty header becomes ``_col<N>`` (N = 1-based column position), the second ``备注`` becomes
    ``备注__2`` (then ``__3`` ...)."""
    out: list[str] = []
    taken: set[str] = set()
    for i, h in enumerate(headers, start=1):
        base = str(h) if h is not None and str(h).strip() else f"_col{i}"
        name, k = base, 1
        while name in taken:
            k += 1
            name = f"{base}__{k}"
        taken.add(name)
        out.append(name)
    return out


def check_header_shape(headers: list[object], path: Path) -> None:
    if len(headers) > MAX_COLUMNS:
        raise refuse(f"文件有 {len(headers)} 列，超过上限 {MAX_COLUMNS} 列", path,
                     "确认导出的是数据表本身；多余的空列请删除后重新报送")
    for i, h in enumerate(headers, start=1):
        if h is not None and len(str(h)) > MAX_HEADER_CHARS:
            raise refuse(f"第 {i} 列的表头长度为 {len(str(h))} 个字符，超过上限 {MAX_HEADER_CHARS}", path,
                         "第一行应为表头（字段名称）；若文件没有表头行，请按契约加上表头后重新报送")


def resolve_header(headers: list[object], contract: Contract, path: Path) -> HeaderMap:
    """Map delivered headers to fields; refuse files that cannot be this dataset.

    The refusal for a missing key column lists only the contract's headers, never the delivered ones:
    in a header-less file the "header" is the first person's record."""
    check_header_shape(headers, path)
    names = unique_headers(headers)
    lookup = contract.header_map()
    mapped: list[str | None] = []
    seen: dict[str, str] = {}
    for h, name in zip(headers, names):
        fname = lookup.get(normalize_header(h)) if h is not None and str(h).strip() else None
        if fname and fname in seen:
            raise DeliveryRefused(
                f"表头 “{seen[fname]}” 与 “{h}” 都对应字段 {fname}，无法判断以哪一列为准",
                where=str(path),
                hint="删除重复列后重新报送",
            )
        if fname:
            seen[fname] = str(h)
        mapped.append(fname)
    missing_keys = [k for k in contract.key if k not in seen]
    if missing_keys:
        wanted = "；".join(f"{contract.field(k).title}（可用表头：{'、'.join(contract.field(k).headers[:-1])}）" for k in missing_keys)
        raise DeliveryRefused(
            f"文件缺少业务主键列：{wanted}，整个文件被拒收，未写入任何数据",
            where=f"{path}（共 {len(headers)} 列，其中 {len(seen)} 列的表头与契约相符）",
            hint=f"确认该文件属于数据集 {contract.dataset}（{contract.title}）且第一行是表头，或按契约 "
                 f"{contract.path.name if contract.path else ''} 补齐表头后重新报送",
        )
    missing = [f.name for f in contract.fields if f.name not in seen]
    return HeaderMap(headers=names, fields=mapped, missing=missing)


def _json_escape(arr: pa.Array) -> pa.Array:
    for a, b in (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
        arr = pc.replace_substring(arr, a, b)
    return arr


def extra_json(columns: dict[str, pa.Array], n: int) -> pa.Array:
    """Vectorized JSON object text of unmapped columns (NULL values become JSON null)."""
    if not columns:
        return pa.nulls(n, pa.string())
    parts: list[pa.Array | str] = []
    for i, (name, arr) in enumerate(columns.items()):
        key = json.dumps(name, ensure_ascii=False)
        val = pc.if_else(pc.is_null(arr), "null",
                         pc.binary_join_element_wise('"', _json_escape(pc.cast(arr, pa.string())), '"', ""))
        parts.extend([("{" if i == 0 else ",") + key + ":", val])
    parts.append("}")
    arrays = [p if isinstance(p, (pa.Array, pa.ChunkedArray)) else pa.array([p] * n, pa.string()) for p in parts]
    return pc.binary_join_element_wise(*arrays, "")


def check_lengths(cols: list[pa.Array], names: list[str], row_numbers: np.ndarray, path: Path) -> None:
    """Refuse a value longer than ``MAX_FIELD_CHARS``, naming its row and column (vectorized: the byte
    length bounds the character length, so characters are counted only in a column that might be over)."""
    for name, col in zip(names, cols):
        if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)) or len(col) == 0:
            continue
        longest = pc.max(pc.binary_length(col)).as_py()
        if longest is None or longest <= MAX_FIELD_CHARS:
            continue
        over = pc.fill_null(pc.greater(pc.utf8_length(col), MAX_FIELD_CHARS), False)
        if pc.any(over).as_py():
            i = pc.index(over, True).as_py()
            raise refuse(f"第 {int(row_numbers[i])} 行 “{name}” 列的值超过 {MAX_FIELD_CHARS} 个字符的上限", path,
                         OVERSIZED_CELL_HINT)


def shape(batch_cols: list[pa.Array], header: HeaderMap, contract: Contract, row_numbers: np.ndarray,
          raw: pa.Array | None = None, *, path: Path) -> pa.RecordBatch:
    """Arrange delivered columns into the bronze layout (after bounding every value's length)."""
    check_lengths(batch_cols, header.headers, row_numbers, path)
    n = len(row_numbers)
    by_field = {f: c for f, c in zip(header.fields, batch_cols) if f}
    extras = {h: c for h, f, c in zip(header.headers, header.fields, batch_cols) if f is None}
    arrays = [
        pc.cast(by_field[f.name], pa.string()) if f.name in by_field else pa.nulls(n, pa.string())
        for f in contract.fields
    ]
    arrays.append(extra_json(extras, n))
    arrays.append(raw if raw is not None else pa.nulls(n, pa.string()))
    arrays.append(pa.array(row_numbers, pa.int64()))
    return pa.RecordBatch.from_arrays(arrays, schema=output_schema(contract))


def ragged_batch(items: list[tuple[int, str]], contract: Contract, *, path: Path) -> pa.RecordBatch:
    """Rows that did not fit the header land with their raw text and no field values."""
    for row, text in items:
        if len(text) > MAX_RAW_CHARS:
            raise refuse(f"第 {row} 行与表头列数不符，且长达 {len(text):,} 个字符，超过上限 {MAX_RAW_CHARS:,}", path,
                         "检查引号是否成对、该行是否误存了大段文本，修正后重新报送")
    n = len(items)
    nulls = [pa.nulls(n, pa.string()) for _ in contract.fields]
    return pa.RecordBatch.from_arrays(
        [*nulls, pa.nulls(n, pa.string()), pa.array([t for _, t in items], pa.string()),
         pa.array([r for r, _ in items], pa.int64())],
        schema=output_schema(contract),
    )


# -- Third-party parsers on hostile files ---------------------------------------------------------

def guarded(items: Iterator, path: Path, what: str, hint: str) -> Iterator:
    """Iterate a third-party parser (openpyxl, pyarrow) over an untrusted file: whatever it raises on a
    damaged file (zlib.error, XML ParseError - also expat's billion-laughs and external-entity blocks -,
    NotImplementedError, ArrowInvalid ...) becomes a refusal naming the file. Only the exception's class
    is named: library messages may quote delivered text."""
    while True:
        try:
            item = next(items)
        except StopIteration:
            return
        except DeliveryRefused:
            raise
        except Exception as exc:  # noqa: BLE001 - any parser failure on an untrusted file is a refusal
            raise refuse(f"{what}（{kind(exc)}）", path, hint) from None
        yield item


def kind(exc: BaseException) -> str:
    """The exception's class, module-qualified unless built in (``zlib.error``, ``...ParseError``)."""
    t = type(exc)
    return t.__name__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


# -- CSV ------------------------------------------------------------------------------------------

_BOM = b"\xef\xbb\xbf"
_ENCODING_HINT = "请统一以 UTF-8 或 GB18030 编码重新导出后报送"


def detect_encoding(path: Path) -> str:
    """UTF-8 (with or without BOM) or GB18030, decided on the head of the file (headers are Chinese)."""
    with path.open("rb") as fh:
        head = fh.read(1 << 16)
    if head.startswith(_BOM):
        return "utf-8-sig"
    try:
        head.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 4:  # a character cut at the sample boundary
            return "utf-8"
    try:
        head.decode("gb18030")
        return "gb18030"
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 4 and len(head) == 1 << 16:
            return "gb18030"
        raise refuse("无法识别文件编码（既不是 UTF-8 也不是 GB18030）", path,
                     "请以 UTF-8 或 GB18030 编码重新导出 CSV 后报送") from None


class CsvBytes(io.RawIOBase):
    """The delivered bytes as pyarrow should see them: UTF-8 without BOM, ending in a newline.

    Encodings are checked here, strictly, so a bad byte is a refusal naming its offset: GB18030 is
    transcoded, UTF-8 validated and passed through. Left to pyarrow, a bad byte in a row of the wrong width
    reached its invalid-row callback undecodable ("Exception ignored ... UnicodeDecodeError") and the file
    was refused for its column count instead. A final newline is supplied so that a header-only file reads
    as a header and zero rows with or without one."""

    CHUNK = 1 << 20

    def __init__(self, path: Path, encoding: str) -> None:
        self._path = path
        self._fh = path.open("rb")
        self._transcode = encoding == "gb18030"
        self._decoder = codecs.getincrementaldecoder("gb18030" if self._transcode else "utf-8")("strict")
        self._encoding = "GB18030" if self._transcode else "UTF-8"
        self._pending = bytearray()
        self._offset = 0  # delivered bytes consumed
        self._last = b"\n"
        self._started = False
        self._done = False

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._fh.close()
        super().close()

    def _convert(self, chunk: bytes, final: bool) -> bytes:
        try:
            text = self._decoder.decode(chunk, final)
        except UnicodeDecodeError as exc:
            at = max(self._offset - len(chunk) + exc.start, 0)
            raise refuse(f"文件中存在非 {self._encoding} 编码的内容（约第 {at:,} 字节处，同一文件内编码不一致）",
                         self._path, _ENCODING_HINT) from None
        return text.encode("utf-8") if self._transcode else chunk

    def _fill(self) -> None:
        chunk = self._fh.read(self.CHUNK)
        self._offset += len(chunk)
        if not self._started:
            self._started = True
            if chunk.startswith(_BOM):
                chunk = chunk[len(_BOM):]
        out = self._convert(chunk, final=not chunk)
        if not chunk:
            self._done = True
            if self._last not in (b"\n", b"\r"):
                out += b"\n"
        if out:
            self._last = out[-1:]
        self._pending += out

    def readinto(self, buf) -> int:  # type: ignore[override]
        while not self._pending and not self._done:
            self._fill()
        n = min(len(buf), len(self._pending))
        buf[:n] = self._pending[:n]
        del self._pending[:n]
        return n


def _csv_source(path: Path, encoding: str) -> io.BufferedReader:
    # Buffered: pyarrow takes a short read for the end of the file.
    return io.BufferedReader(CsvBytes(path, encoding), buffer_size=CsvBytes.CHUNK)


def _csv_failure(exc: Exception, path: Path, encoding: str) -> DeliveryRefused:
    """pyarrow's CSV errors as refusals, without its text (which quotes the offending row)."""
    msg = str(exc)
    if "UTF8" in msg or "utf8" in msg or "decode" in msg:
        return refuse(f"文件中存在非 {encoding} 编码的内容（同一文件内编码不一致）", path, _ENCODING_HINT)
    if "straddl" in msg:
        return refuse("文件中有一行（或表头）过长（数 MB 以上），无法按行读取", path,
                      "检查引号是否成对：一个未闭合的引号会把后面的整个文件并成一个值")
    if "Empty CSV" in msg:
        return refuse(EMPTY_DELIVERY.text, path, EMPTY_DELIVERY.hint)
    return refuse(f"CSV 无法解析（{kind(exc)}）", path, "检查引号与分隔符是否成对、完整")


def _csv_width(path: Path, encoding: str) -> int:
    """How many columns the header record has, as pyarrow parses it (quoted newlines included)."""
    with _csv_source(path, encoding) as src:
        probe = pacsv.open_csv(
            src,
            read_options=pacsv.ReadOptions(use_threads=False, autogenerate_column_names=True,
                                           block_size=CSV_PROBE_BYTES),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=lambda row: "skip"),
        )
        return len(probe.schema)


def read_csv(path: Path, contract: Contract, info: Delivery) -> Iterator[pa.RecordBatch]:
    """The header is the first *record* as pyarrow parses it (a quoted newline inside a header name is not
    a row break), read in the same pass as the data so both parsers can never disagree."""
    enc = detect_encoding(path)
    info.encoding = "utf-8" if enc == "utf-8-sig" else enc
    try:
        yield from _read_csv(path, contract, info, enc)
    except (pa.ArrowException, UnicodeError) as exc:
        raise _csv_failure(exc, path, info.encoding) from None


def _read_csv(path: Path, contract: Contract, info: Delivery, enc: str) -> Iterator[pa.RecordBatch]:
    width = _csv_width(path, enc)
    if width > MAX_COLUMNS:
        check_header_shape([None] * width, path)
    names = [f"c{i}" for i in range(width)]
    ragged: list[tuple[int, str]] = []

    unclosed: list[int] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        ragged.append(((row.number or 0) - 1, row.text))  # record 1 is the header: record - 1 = data row
        if "\n" in row.text or "\r" in row.text:
            # A record of the wrong width that spans lines: an unclosed quote swallowed the next row(s).
            # Landing it as one ragged row would lose the count of delivered rows, so the file is refused.
            unclosed.append((row.number or 0) - 1)
        return "skip"

    header: HeaderMap | None = None
    with _csv_source(path, enc) as src:
        reader = pacsv.open_csv(
            src,
            read_options=pacsv.ReadOptions(use_threads=False, column_names=names, block_size=CSV_BLOCK_BYTES),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in names}, strings_can_be_null=False, quoted_strings_can_be_null=False,
                null_values=[],
            ),
        )
        next_row = 0  # data-row position of the next record; the header record is position 0
        taken: set[int] = set()
        for batch in reader:
            _check_unclosed(unclosed, path)
            n = batch.num_rows
            pending = sorted(r for r, _ in ragged if r not in taken)
            # Accepted rows fill the data-row positions not taken by ragged rows (records, not lines).
            span = n
            while True:
                inside = [r for r in pending if next_row <= r < next_row + span]
                if n + len(inside) == span:
                    break
                span = n + len(inside)
            positions = np.arange(next_row, next_row + span, dtype=np.int64)
            if inside:
                positions = positions[~np.isin(positions, np.array(inside, dtype=np.int64))]
                taken.update(inside)
            next_row += span
            if header is None and n:
                header = resolve_header([c[0].as_py() for c in batch.columns], contract, path)
                info.header = header
                batch, positions, n = batch.slice(1), positions[1:], n - 1
            if n:
                cols = [pc.if_else(pc.equal(c, ""), pa.scalar(None, pa.string()), c) for c in batch.columns]
                yield shape(cols, header, contract, positions, path=path)
    _check_unclosed(unclosed, path)
    if header is None:
        raise refuse(EMPTY_DELIVERY.text, path, EMPTY_DELIVERY.hint)
    if ragged:
        info.ragged_rows = len(ragged)
        yield ragged_batch(ragged, contract, path=path)


def _check_unclosed(unclosed: list[int], path: Path) -> None:
    if unclosed:
        raise refuse(f"第 {unclosed[0]} 行引号未闭合：该行与后续行被并成一条列数不符的记录", path,
                     "检查该行的双引号是否成对（值中的引号应写成两个双引号 \"\"），修正后重新报送",
                     where=f"{path} 第 {unclosed[0]} 行")


# -- XLSX -----------------------------------------------------------------------------------------

_XLSX_HINT = "确认文件为 Excel 另存的 .xlsx 且未损坏；可在 Excel 中打开后另存一次再报送"


def cell_text(v: object) -> str | None:
    """The text an Excel cell holds. Numbers stay numbers: Excel stores every number as a double."""
    if v is None:
        return None
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, datetime):
        return v.date().isoformat() if v.time() == time(0) else v.isoformat(sep=" ")
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, (int, float)):
        # Excel keeps 15 significant digits: an 18-digit ID number typed as a number is already lost.
        if float(v).is_integer() and abs(v) < 1e15:
            return str(int(v))
        return f"{float(v):.15g}"
    s = str(v)
    return s if s != "" else None


def check_zip(path: Path) -> None:
    """Refuse a zip bomb before any XML is inflated: declared sizes and ratios come from the central
    directory (zipfile never inflates a member past its declared size; a lie fails the CRC check)."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise refuse(f"无法打开 Excel 文件：不是有效的 .xlsx（{kind(exc)}）", path, _XLSX_HINT) from None
    for i in infos:
        limit = MAX_SHARED_STRINGS_BYTES if i.filename.lower().endswith("sharedstrings.xml") else MAX_XLSX_MEMBER_BYTES
        ratio = i.file_size / max(i.compress_size, 1)
        if i.file_size > limit or (i.file_size > RATIO_GRACE_BYTES and ratio > MAX_COMPRESSION_RATIO):
            raise refuse(
                f"Excel 文件解压后过大：部件 {i.filename[:80]} 解压后 {i.file_size:,} 字节（压缩比 {ratio:,.0f} 倍），"
                f"超过上限（{limit >> 20} MB、{MAX_COMPRESSION_RATIO} 倍）", path,
                "正常的数据表不会如此；请确认文件来源，或改以 CSV 报送")


def _xlsx_rows(path: Path, ws, formulas=None) -> Iterator[tuple[int, list[str | None]]]:
    """(sheet row number, cell texts) of every row, bounded in width, count and cell length.

    ``formulas`` is the same sheet opened without ``data_only`` (given when the file holds formulas): a
    formula cell without a cached value reads as empty with ``data_only``, and would land as NULL."""
    rows = guarded(iter(ws.iter_rows(values_only=True)), path, "Excel 工作表内容损坏，无法读取", _XLSX_HINT)
    shadow = guarded(iter(formulas.iter_rows(values_only=True)), path, "Excel 工作表内容损坏，无法读取",
                     _XLSX_HINT) if formulas is not None else None
    for line_no, row in enumerate(rows, start=1):
        if shadow is not None:
            _check_cached(path, ws.title, line_no, row, next(shadow, ()))
        if line_no > MAX_XLSX_ROWS:
            raise refuse(f"工作表超过 Excel 的 {MAX_XLSX_ROWS:,} 行上限", path, _XLSX_HINT)
        if len(row) > MAX_COLUMNS:
            raise refuse(f"第 {line_no} 行有 {len(row)} 列，超过上限 {MAX_COLUMNS} 列", path,
                         "删除表格右侧多余的列后重新报送", where=f"{path} 工作表第 {line_no} 行")
        texts = [cell_text(v) for v in row]
        for col, t in enumerate(texts, start=1):
            if t is not None and len(t) > MAX_FIELD_CHARS:
                raise refuse(f"工作表第 {line_no} 行第 {col} 列的单元格超过 {MAX_FIELD_CHARS} 个字符的上限", path,
                             OVERSIZED_CELL_HINT,
                             where=f"{path} 工作表第 {line_no} 行")
        yield line_no, texts


_FORMULA_TAG = re.compile(rb"<(?:\w+:)?f[\s>/]")


def _has_formulas(path: Path) -> bool:
    """Whether any worksheet part holds a formula element (a streaming scan of the XML, bounded by
    ``check_zip``), so the second, formula-preserving read is paid only by files that need it."""
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            if not (name.startswith("xl/worksheets/") and name.endswith(".xml")):
                continue
            with zf.open(name) as fh:
                tail = b""
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    if _FORMULA_TAG.search(tail + chunk):
                        return True
                    tail = chunk[-16:]
    return False


def _is_formula(v: object) -> bool:
    return (isinstance(v, str) and v.startswith("=")) or type(v).__name__ in ("ArrayFormula", "DataTableFormula")


def _check_cached(path: Path, title: str, line_no: int, row: tuple, shadow: tuple) -> None:
    """Refuse a formula cell whose computed value the file does not hold (a file written by a program,
    never opened in Excel): its value is unknown here, and landing NULL would lose it silently."""
    from openpyxl.utils import get_column_letter

    for col, (v, f) in enumerate(zip(row, shadow), start=1):
        if (v is None or v == "") and _is_formula(f):
            cell = f"{get_column_letter(col)}{line_no}"
            raise refuse(f"工作表 {_sheet_name(title)} 的 {cell} 单元格是公式，但文件中没有公式的计算结果", path,
                         "请在 Excel 中打开该文件、让公式计算后另存再报送，或将公式列“粘贴为数值”后报送",
                         where=f"{path} 工作表 {_sheet_name(title)} {cell} 单元格")


def _sheet_name(title: str) -> str:
    """A sheet's title as a message may show it (a title is delivered text: redacted like a header)."""
    return f"“{scrub(str(title)[:31])}”"


_ID_LIKE = re.compile(r"\d{6,}")


def _sheet_holds_data(path: Path, ws) -> bool:
    """Whether a sheet other than the first holds rows. Conservative: after its first non-empty row
    (header-like), any row with two or more cells, or with one cell holding a run of 6+ digits (an ID,
    a code, a phone), is data; a sheet of one-cell text lines (填报说明, notes) or only a header is not."""
    ws.reset_dimensions()
    first = True
    for _, texts in _xlsx_rows(path, ws):
        cells = [t for t in texts if t]
        if not cells:
            continue
        if first:
            first = False
            continue
        if len(cells) > 1 or _ID_LIKE.search(cells[0]):
            return True
    return False


def _check_single_sheet(path: Path, sheets: list) -> None:
    """Only the first sheet is read; a workbook whose other sheets hold data too (a 续表) is refused whole
    rather than landing part of the delivery silently (until sheet selection exists)."""
    full = [i for i, ws in enumerate(sheets) if i > 0 and _sheet_holds_data(path, ws)]
    if full:
        names = "、".join(f"第 {i + 1} 个工作表 {_sheet_name(sheets[i].title)}" for i in [0, *full])
        raise refuse(f"Excel 文件中有多个工作表含有数据（{names}），只能读取第一个工作表，整个文件被拒收", path,
                     "请每个文件只报送一个工作表（或将各工作表的数据合并到第一个工作表）后重新报送")


def _is_footer(texts: list[str | None], key_columns: list[int]) -> bool:
    """A footer line starts with a whole footer label, holds at most 3 cells and no business-key value
    besides the label cell itself (a row with a key value is a record, whatever its first cell says)."""
    at = next((i for i, t in enumerate(texts) if t), None)
    if at is None or not _FOOTER.match(texts[at]) or sum(1 for t in texts if t) > 3:
        return False
    return not any(i != at and i < len(texts) and texts[i] for i in key_columns)


def read_xlsx(path: Path, contract: Contract, info: Delivery) -> Iterator[pa.RecordBatch]:
    """Title rows before the header and a trailing footer block (合计/制表人/备注 ... up to the end, holding
    no data row) are not data; their text goes to the batch log. A footer-looking row *followed* by data is
    not a footer: it lands as a ragged row (its text in ``_raw``, quarantined as ``row.ragged``) and every
    later row lands too, so nothing delivered is dropped."""
    from openpyxl import load_workbook

    check_zip(path)
    try:
        wb = load_workbook(path, read_only=True, data_only=True)
        ws = wb.worksheets[0]
        # The <dimension> element is the file's claim: trusting it pads every row to its width and
        # silently drops rows past its last row. Read what the sheet holds instead.
        ws.reset_dimensions()
        title = ws.title
        formulas = load_workbook(path, read_only=True, data_only=False) if _has_formulas(path) else None
        if formulas is not None:
            formulas.worksheets[0].reset_dimensions()
    except Exception as exc:  # noqa: BLE001 - any parser failure on an untrusted file is a refusal
        raise refuse(f"无法打开 Excel 文件（{kind(exc)}）", path, _XLSX_HINT) from None
    try:
        _check_single_sheet(path, wb.worksheets)
        ws.reset_dimensions()
        yield from _read_sheet(path, contract, info, ws, title, formulas.worksheets[0] if formulas else None)
    finally:
        wb.close()
        if formulas is not None:
            formulas.close()


def _read_sheet(path: Path, contract: Contract, info: Delivery, ws, title: str,
                formulas=None) -> Iterator[pa.RecordBatch]:
    lookup = contract.header_map()
    rows = _xlsx_rows(path, ws, formulas)
    header: HeaderMap | None = None
    for line_no, texts in rows:
        hits = sum(1 for t in texts if t and normalize_header(t) in lookup)
        if hits >= min(2, len(contract.fields)):
            while texts and texts[-1] is None:
                texts.pop()
            header = resolve_header(texts, contract, path)
            break
        if any(texts):
            info.skipped_lines.append(f"第{line_no}行（标题）：" + " ".join(t for t in texts if t))
        if line_no >= 20:
            break
    if header is None:
        raise refuse("前 20 行中找不到与数据集契约相符的表头", path,
                     f"确认该文件属于数据集 {contract.dataset}（{contract.title}），表头需使用契约中的字段名称",
                     where=f"{path} 工作表 “{title}”")
    info.header = header
    width = len(header.headers)
    cols: list[list[str | None]] = [[] for _ in range(width)]
    numbers: list[int] = []
    ragged: list[tuple[int, str]] = []
    footer: list[list[str | None]] = []  # footer-looking rows not (yet) followed by data
    data_row = 0

    def flush() -> pa.RecordBatch:
        arrays = [pa.array(c, pa.string()) for c in cols]
        b = shape(arrays, header, contract, np.array(numbers, dtype=np.int64), path=path)
        for c in cols:
            c.clear()
        numbers.clear()
        return b

    key_columns = [i for i, f in enumerate(header.fields) if f in contract.key]
    for _, texts in rows:
        if not any(texts):
            continue  # blank spacer rows hold no data
        if _is_footer(texts, key_columns):
            footer.append(texts)
            continue
        for kept in footer:  # data follows: these were notes inside the table, not its footer
            data_row += 1
            ragged.append((data_row, ",".join(t or "" for t in kept)))
        footer.clear()
        data_row += 1
        if any(t for t in texts[width:]):
            ragged.append((data_row, ",".join(t or "" for t in texts)))
            continue
        for i in range(width):
            cols[i].append(texts[i] if i < len(texts) else None)
        numbers.append(data_row)
        if len(numbers) >= BATCH_ROWS:
            yield flush()
    info.skipped_lines.extend("（表尾）" + " ".join(t for t in kept if t) for kept in footer)
    if numbers:
        yield flush()
    if ragged:
        info.ragged_rows = len(ragged)
        yield ragged_batch(ragged, contract, path=path)


# -- JSON Lines -----------------------------------------------------------------------------------

_JSONL_HINT = "每行应是一个 UTF-8 编码的 JSON 对象，键为字段名称"


def _json_text(v: object) -> str | None:
    if v is None:
        return None
    if isinstance(v, str):
        return v if v != "" else None
    if isinstance(v, bool):
        return "true" if v else "false"
    return json.dumps(v, ensure_ascii=False)


def _depth(obj: object) -> int:
    """Nesting depth of a parsed JSON value, iteratively (the value itself is bounded by the parser)."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            v = list(v.values())
        if isinstance(v, list):
            deepest = max(deepest, d)
            stack.extend((x, d + 1) for x in v if isinstance(x, (dict, list)))
    return deepest


def _keep_duplicates(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object whose keys repeat keeps every value: the later ``姓名`` becomes ``姓名__2`` (then
    ``__3`` ...), as a repeated CSV header does (``json.loads`` would silently keep only the last value)."""
    out: dict = {}
    for k, v in pairs:
        name, i = k, 1
        while name in out:
            i += 1
            name = f"{k}__{i}"
        out[name] = v
    return out


def _parse_record(text: str, n: int, path: Path) -> dict | None:
    """The record of one line, or None when it is not a JSON object we can store (it lands as ragged, raw).

    Refused outright: nesting deeper than ``MAX_JSON_DEPTH`` (Python's parser gives up on ~1,000 levels with
    RecursionError). A ``\\ud800`` escape yields a lone surrogate, which no Arrow string can hold: the
    line, valid UTF-8 text, lands raw as ragged."""
    try:
        obj = json.loads(text, object_pairs_hook=_keep_duplicates)
    except RecursionError:
        obj = None
        deep = True
    except ValueError:
        return None
    else:
        deep = isinstance(obj, dict) and _depth(obj) > MAX_JSON_DEPTH
    if deep:
        raise refuse(f"第 {n} 行的 JSON 嵌套超过 {MAX_JSON_DEPTH} 层", path, "字段值应为文本或数字，不应多层嵌套")
    if not isinstance(obj, dict):
        return None
    if "\\u" in text:
        try:
            json.dumps(obj, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            return None
    return obj


def _jsonl_records(path: Path) -> Iterator[tuple[int, str, dict | None]]:
    """(line number, text, record or None) of every non-blank line, each line bounded in length."""
    with path.open("rb") as fh:
        for n in itertools.count(1):
            line = fh.readline(MAX_RECORD_BYTES + 1)
            if not line:
                return
            if len(line) > MAX_RECORD_BYTES:
                raise refuse(f"第 {n} 行长于 {MAX_RECORD_BYTES >> 20} MB", path, _JSONL_HINT)
            if n == 1 and line.startswith(_BOM):
                line = line[len(_BOM):]
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                raise refuse(f"第 {n} 行不是有效的 UTF-8", path, _JSONL_HINT) from None
            if text.strip():
                yield n, text, _parse_record(text, n, path)


def read_jsonl(path: Path, contract: Contract, info: Delivery) -> Iterator[pa.RecordBatch]:
    info.encoding = "utf-8"
    keys: dict[str, None] = {}
    for i, (_, _, obj) in enumerate(_jsonl_records(path)):
        if i >= 1000:
            break
        if obj is not None:
            keys.update(dict.fromkeys(obj))
            if len(keys) > MAX_COLUMNS:
                check_header_shape(list(keys), path)
    if not keys:
        raise refuse("JSON Lines 文件中没有可识别的记录", path, _JSONL_HINT)
    names = list(keys)
    header = resolve_header(names, contract, path)
    info.header = header
    cols: list[list[str | None]] = [[] for _ in names]
    index = {k: i for i, k in enumerate(names)}
    numbers: list[int] = []
    ragged: list[tuple[int, str]] = []

    def flush() -> pa.RecordBatch:
        b = shape([pa.array(c, pa.string()) for c in cols], header, contract, np.array(numbers, dtype=np.int64),
                  path=path)
        for c in cols:
            c.clear()
        numbers.clear()
        return b

    for n, text, obj in _jsonl_records(path):
        if obj is None or any(k not in index for k in obj):
            ragged.append((n, text.rstrip("\r\n")))
            continue
        for k, i in index.items():
            cols[i].append(_json_text(obj.get(k)))
        numbers.append(n)
        if len(numbers) >= BATCH_ROWS:
            yield flush()
    if numbers:
        yield flush()
    if ragged:
        info.ragged_rows = len(ragged)
        yield ragged_batch(ragged, contract, path=path)


# -- Parquet --------------------------------------------------------------------------------------

_PARQUET_HINT = "确认文件完整、未损坏；可从源系统重新导出后报送"


def _as_text(arr: pa.Array) -> pa.Array:
    t = arr.type
    if pa.types.is_timestamp(t):
        return pc.strftime(arr, format="%Y-%m-%d %H:%M:%S")
    if pa.types.is_date(t):
        return pc.strftime(arr, format="%Y-%m-%d")
    return pc.cast(arr, pa.string())


def _textable(t: pa.DataType) -> bool:
    """Whether bronze can keep a column of this type as text (struct, list and map columns cannot)."""
    try:
        _as_text(pa.array([], t))
        return True
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError):
        return False


def _parquet_file(path: Path):
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        return pf, pf.schema_arrow, pf.metadata
    except Exception as exc:  # noqa: BLE001 - any parser failure on an untrusted file is a refusal
        raise refuse(f"无法读取 Parquet 文件（{kind(exc)}）", path, _PARQUET_HINT) from None


def read_parquet(path: Path, contract: Contract, info: Delivery) -> Iterator[pa.RecordBatch]:
    pf, schema, meta = _parquet_file(path)
    check_header_shape(schema.names, path)
    for f in schema:
        if not _textable(f.type):
            raise refuse(f"“{scrub(f.name[:MAX_HEADER_CHARS])}” 列是嵌套类型（{str(f.type)[:200]}），无法按原样保存为文本", path,
                         "请将结构（struct）、列表（list）或映射（map）列展开为普通列后重新报送")
    for i in range(meta.num_row_groups):
        size = meta.row_group(i).total_byte_size
        if size > MAX_PARQUET_ROW_GROUP_BYTES:
            raise refuse(f"第 {i + 1} 个行组解压后 {size:,} 字节，超过上限 {MAX_PARQUET_ROW_GROUP_BYTES >> 20} MB", path,
                         "导出时请使用较小的行组（row group），例如每组 10 万行")
    header = resolve_header(schema.names, contract, path)
    info.header = header
    row = 1
    batches = guarded(pf.iter_batches(batch_size=BATCH_ROWS), path, "Parquet 文件内容损坏，无法读取", _PARQUET_HINT)
    for batch in batches:
        n = batch.num_rows
        try:
            texts = [_as_text(c) for c in batch.columns]
        except (pa.ArrowException, ValueError) as exc:
            raise refuse(f"第 {row}–{row + n - 1} 行中有无法转换为文本的值（{kind(exc)}），"
                         "例如不是有效 UTF-8 的二进制值", path, _PARQUET_HINT) from None
        yield shape(texts, header, contract, np.arange(row, row + n, dtype=np.int64), path=path)
        row += n


READERS = {"csv": read_csv, "xlsx": read_xlsx, "jsonl": read_jsonl, "parquet": read_parquet}


def format_of(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DeliveryRefused(
            f"不支持的文件格式：{path.suffix or '（无扩展名）'}",
            where=str(path),
            hint="支持 CSV（UTF-8/GB18030）、XLSX、JSON Lines（.jsonl）与 Parquet",
        )
    return fmt


def open_delivery(path: Path, contract: Contract) -> tuple[Delivery, Iterator[pa.RecordBatch]]:
    fmt = format_of(path)
    info = Delivery(format=fmt)
    return info, READERS[fmt](path, contract, info)


def peek(stream: Iterator[pa.RecordBatch]) -> tuple[pa.RecordBatch | None, Iterator[pa.RecordBatch]]:
    """Pull the first batch so header problems surface before any write starts."""
    first = next(stream, None)

    def chain() -> Iterator[pa.RecordBatch]:
        if first is not None:
            yield first
        yield from stream

    return first, chain()


__all__ = ["Delivery", "HeaderMap", "open_delivery", "output_schema", "peek"]
