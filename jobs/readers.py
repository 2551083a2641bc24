"""Format readers: every delivered file becomes a stream of Arrow batches of *text*, one column per
contract field, plus ``_extra`` (unmapped columns as JSON), ``_raw`` (the raw text of rows that did not fit
the header) and ``_row_number`` (1-based data row in the file).

Bronze keeps values exactly as delivered: no typing, no trimming, no repair. An Excel number stays the
number Excel holds (an 18-digit ID number saved as a number reads back as ``4.40106199003071e+17``).
Problems that make a whole file unusable raise ``DeliveryRefused`` before or during the stream; the ingest
job writes inside one Delta transaction, so a refused file leaves nothing behind.
"""

from __future__ import annotations

import csv
import json
import re
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

FORMATS = {".csv": "csv", ".txt": "csv", ".xlsx": "xlsx", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
BATCH_ROWS = 500_000
_FOOTER = re.compile(r"^\s*(合计|总计|小计|共计|制表|审核|填报|备注|注[:：]|说明[:：]|数据来源|导出|打印)")


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
        + [pa.field("_extra", pa.string()), pa.field("_raw", pa.string()), pa.field("_row_number", pa.int64())]
    )


def resolve_header(headers: list[str], contract: Contract, path: Path) -> HeaderMap:
    """Map delivered headers to fields; refuse files that cannot be this dataset."""
    lookup = contract.header_map()
    mapped: list[str | None] = []
    seen: dict[str, str] = {}
    for h in headers:
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
            where=f"{path}（表头：{'、'.join(str(h) for h in headers[:12])}）",
            hint=f"确认该文件属于数据集 {contract.dataset}（{contract.title}），或按契约 {contract.path.name if contract.path else ''} 补齐表头后重新报送",
        )
    missing = [f.name for f in contract.fields if f.name not in seen]
    return HeaderMap(headers=[str(h) if h is not None else "" for h in headers], fields=mapped, missing=missing)


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


def shape(batch_cols: list[pa.Array], header: HeaderMap, contract: Contract, row_numbers: np.ndarray,
          raw: pa.Array | None = None) -> pa.RecordBatch:
    """Arrange delivered columns into the bronze layout."""
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


def ragged_batch(items: list[tuple[int, str]], contract: Contract) -> pa.RecordBatch:
    """Rows that did not fit the header land with their raw text and no field values."""
    n = len(items)
    nulls = [pa.nulls(n, pa.string()) for _ in contract.fields]
    return pa.RecordBatch.from_arrays(
        [*nulls, pa.nulls(n, pa.string()), pa.array([t for _, t in items], pa.string()),
         pa.array([r for r, _ in items], pa.int64())],
        schema=output_schema(contract),
    )


# -- CSV ------------------------------------------------------------------------------------------

def detect_encoding(path: Path) -> str:
    """UTF-8 (with or without BOM) or GB18030, decided on the head of the file (headers are Chinese)."""
    head = path.open("rb").read(1 << 16)
    if head.startswith(b"\xef\xbb\xbf"):
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
    except UnicodeDecodeError:
        raise DeliveryRefused(
            "无法识别文件编码（既不是 UTF-8 也不是 GB18030）",
            where=str(path),
            hint="请以 UTF-8 或 GB18030 编码重新导出 CSV 后报送",
        ) from None


def read_csv(path: Path, contract: Contract, info: Delivery) -> Iterator[pa.RecordBatch]:
    enc = detect_encoding(path)
    info.encoding = "utf-8" if enc == "utf-8-sig" else enc
    with path.open("r", encoding=enc, newline="") as fh:
        first = next(csv.reader(fh), None)
    if not first:
        raise DeliveryRefused("文件为空，没有表头", where=str(path), hint="确认导出是否成功后重新报送")
    header = resolve_header(first, contract, path)
    info.header = header
    names = [f"c{i}" for i in range(len(first))]
    ragged: list[tuple[int, str]] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        ragged.append(((row.number or 0) - 1, row.text))
        return "skip"

    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(
                use_threads=False, column_names=names, skip_rows=1, block_size=32 << 20,
                encoding="utf8" if enc.startswith("utf-8") else enc,
            ),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in names}, strings_can_be_null=False, quoted_strings_can_be_null=False,
                null_values=[],
            ),
        )
        next_row = 1
        taken: set[int] = set()
        for batch in reader:
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
            if n:
                cols = [pc.if_else(pc.equal(c, ""), pa.scalar(None, pa.string()), c) for c in batch.columns]
                yield shape(cols, header, contract, positions)
        if ragged:
            info.ragged_rows = len(ragged)
            yield ragged_batch(ragged, contract)
    except pa.ArrowInvalid as exc:
        msg = str(exc)
        if "UTF8" in msg or "utf8" in msg or "decode" in msg:
            raise DeliveryRefused(
                f"文件中存在非 {info.encoding} 编码的内容（同一文件内编码不一致）",
                where=str(path), hint="请统一以 UTF-8 或 GB18030 编码重新导出后报送",
            ) from None
        raise DeliveryRefused(f"CSV 无法解析：{msg}", where=str(path), hint="检查引号与分隔符是否成对、完整") from None
    except UnicodeDecodeError as exc:
        raise DeliveryRefused(
            f"文件中存在非 {info.encoding} 编码的内容：{exc.reason}",
            where=str(path), hint="请统一以 UTF-8 或 GB18030 编码重新导出后报送",
        ) from None


# -- XLSX -----------------------------------------------------------------------------------------

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


def read_xlsx(path: Path, contract: Contract, info: Delivery) -> Iterator[pa.RecordBatch]:
    import zipfile

    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise DeliveryRefused(f"无法打开 Excel 文件：{exc}", where=str(path), hint="确认文件为 .xlsx 格式且未损坏") from None
    ws = wb.worksheets[0]
    lookup = contract.header_map()
    rows = ws.iter_rows(values_only=True)
    header: HeaderMap | None = None
    for line_no, row in enumerate(rows, start=1):
        texts = [cell_text(v) for v in row]
        hits = sum(1 for t in texts if t and normalize_header(t) in lookup)
        if hits >= min(2, len(contract.fields)):
            while texts and texts[-1] is None:
                texts.pop()
            header = resolve_header([t or "" for t in texts], contract, path)
            break
        if any(texts):
            info.skipped_lines.append(f"第{line_no}行（标题）：" + " ".join(t for t in texts if t))
        if line_no >= 20:
            break
    if header is None:
        wb.close()
        raise DeliveryRefused(
            "前 20 行中找不到与数据集契约相符的表头",
            where=f"{path} 工作表 “{ws.title}”",
            hint=f"确认该文件属于数据集 {contract.dataset}（{contract.title}），表头需使用契约中的字段名称",
        )
    info.header = header
    width = len(header.headers)
    cols: list[list[str | None]] = [[] for _ in range(width)]
    numbers: list[int] = []
    ragged: list[tuple[int, str]] = []
    data_row = 0
    footer_started = False

    def flush() -> pa.RecordBatch:
        arrays = [pa.array(c, pa.string()) for c in cols]
        b = shape(arrays, header, contract, np.array(numbers, dtype=np.int64))
        for c in cols:
            c.clear()
        numbers.clear()
        return b

    for row in rows:
        texts = [cell_text(v) for v in row]
        first = next((t for t in texts if t), None)
        if first is None:
            continue  # blank spacer rows hold no data
        if footer_started or (_FOOTER.match(first) and sum(1 for t in texts if t) <= 3):
            footer_started = True
            info.skipped_lines.append("（表尾）" + " ".join(t for t in texts if t))
            continue
        data_row += 1
        extra = texts[width:]
        if any(t for t in extra):
            ragged.append((data_row, ",".join(t or "" for t in texts)))
            continue
        for i in range(width):
            cols[i].append(texts[i] if i < len(texts) else None)
        numbers.append(data_row)
        if len(numbers) >= BATCH_ROWS:
            yield flush()
    wb.close()
    if numbers:
        yield flush()
    if ragged:
        info.ragged_rows = len(ragged)
        yield ragged_batch(ragged, contract)


# -- JSON Lines -----------------------------------------------------------------------------------

def _json_text(v: object) -> str | None:
    if v is None:
        return None
    if isinstance(v, str):
        return v if v != "" else None
    if isinstance(v, bool):
        return "true" if v else "false"
    return json.dumps(v, ensure_ascii=False)


def read_jsonl(path: Path, contract: Contract, info: Delivery) -> Iterator[pa.RecordBatch]:
    info.encoding = "utf-8"
    keys: list[str] = []
    with path.open("rb") as fh:
        for i, line in enumerate(fh):
            if i >= 1000:
                break
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                keys.extend(k for k in obj if k not in keys)
    if not keys:
        raise DeliveryRefused("JSON Lines 文件中没有可识别的记录", where=str(path), hint="每行应是一个 JSON 对象，键为字段名称")
    header = resolve_header(keys, contract, path)
    info.header = header
    cols: list[list[str | None]] = [[] for _ in keys]
    index = {k: i for i, k in enumerate(keys)}
    numbers: list[int] = []
    ragged: list[tuple[int, str]] = []
    with path.open("rb") as fh:
        for n, line in enumerate(fh, start=1):
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                raise DeliveryRefused(f"第 {n} 行不是有效的 UTF-8", where=str(path), hint="JSON Lines 须使用 UTF-8 编码") from None
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except ValueError:
                obj = None
            if not isinstance(obj, dict) or any(k not in index for k in obj):
                ragged.append((n, text.rstrip("\r\n")))
                continue
            for k, i in index.items():
                cols[i].append(_json_text(obj.get(k)))
            numbers.append(n)
            if len(numbers) >= BATCH_ROWS:
                yield shape([pa.array(c, pa.string()) for c in cols], header, contract, np.array(numbers))
                for c in cols:
                    c.clear()
                numbers.clear()
    if numbers:
        yield shape([pa.array(c, pa.string()) for c in cols], header, contract, np.array(numbers))
    if ragged:
        info.ragged_rows = len(ragged)
        yield ragged_batch(ragged, contract)


# -- Parquet --------------------------------------------------------------------------------------

def _as_text(arr: pa.Array) -> pa.Array:
    t = arr.type
    if pa.types.is_timestamp(t):
        return pc.strftime(arr, format="%Y-%m-%d %H:%M:%S")
    if pa.types.is_date(t):
        return pc.strftime(arr, format="%Y-%m-%d")
    return pc.cast(arr, pa.string())


def read_parquet(path: Path, contract: Contract, info: Delivery) -> Iterator[pa.RecordBatch]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DeliveryRefused(f"无法读取 Parquet 文件：{exc}", where=str(path), hint="确认文件完整、未损坏") from None
    header = resolve_header(pf.schema_arrow.names, contract, path)
    info.header = header
    row = 1
    for batch in pf.iter_batches(batch_size=BATCH_ROWS):
        n = batch.num_rows
        yield shape([_as_text(c) for c in batch.columns], header, contract, np.arange(row, row + n, dtype=np.int64))
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
