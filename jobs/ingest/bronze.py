"""Ingest: delivered files -> bronze.<dataset>, losslessly, exactly once per file.

Every row of a file lands in bronze (ragged rows with their raw text), or the file is refused as a whole
with a message naming the file, the reason and what to do. The write is one Delta transaction carrying an
app-level transaction id derived from the file's content, so re-ingesting the same file is a no-op that
says so, even after a crash between the bronze commit and the batch-log write.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa

from govlake.context import Context
from govlake.errors import DeliveryRefused, GovlakeError, RegistryError
from govlake.jobs.ingest.readers import open_delivery, output_schema, peek
from govlake.redaction import mask_ids, scrub
from govlake.status import IngestStatus
from govlake.tables import BRONZE, BRONZE_INGEST_COLUMNS, INGEST_BATCHES

SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")  # the city's calendar day (no DST in China)

META_COLUMNS = BRONZE.arrow_fields(BRONZE_INGEST_COLUMNS)  # what ingest adds to every row


@dataclass
class IngestResult:
    file: str
    dataset: str
    node: str
    status: IngestStatus
    batch_id: str | None = None
    rows: int = 0
    ragged_rows: int = 0
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status != IngestStatus.REFUSED


def content_hash(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(8 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def batch_id_for(dataset: str, node: str, digest: str) -> str:
    return hashlib.sha256(f"{dataset}|{node}|{digest}".encode()).hexdigest()[:20]


def bronze_schema(ctx: Context, dataset: str) -> pa.Schema:
    base = output_schema(ctx.contract(dataset))
    return pa.schema(list(base) + META_COLUMNS)


def _batch_log_row(**kw: object) -> pa.Table:
    return INGEST_BATCHES.from_rows([kw])


_INDEX: dict[str, tuple[int, dict[tuple[str, str, str], dict]]] = {}


def previous_batch(ctx: Context, dataset: str, node: str, digest: str) -> dict | None:
    """The earlier ingest of the same content, if any (for the message; the Delta app transaction on
    bronze is what actually guarantees exactly-once, across processes too).

    The batch log is indexed once per Delta version of the log, not re-read for every file.
    """
    dt = ctx.lake.table(*INGEST_BATCHES.ref)
    if dt is None:
        return None
    uri, version = dt.table_uri, dt.version()
    cached = _INDEX.get(uri)
    if cached is None or cached[0] != version:
        t = ctx.lake.dataset(dt).to_table(columns=["dataset", "node", "content_hash", "status", "rows", "ingested_at"])
        index = {(r["dataset"], r["node"], r["content_hash"]): r for r in t.to_pylist() if r["status"] == IngestStatus.INGESTED}
        _INDEX[uri] = cached = (version, index)
    return cached[1].get((dataset, node, digest))


def remember_batch(ctx: Context, dataset: str, node: str, digest: str, rows: int, at: datetime) -> None:
    """Keep the index current after our own batch-log append, so the next file does not re-read the log."""
    dt = ctx.lake.table(*INGEST_BATCHES.ref)
    cached = _INDEX.get(dt.table_uri)
    if cached is not None and cached[0] == dt.version() - 1:
        cached[1][(dataset, node, digest)] = {"rows": rows, "ingested_at": at, "status": IngestStatus.INGESTED}
        _INDEX[dt.table_uri] = (dt.version(), cached[1])


def follow_index(ctx: Context) -> None:
    """After our own append of a *refused* row (not indexed: only ingested content is a duplicate), keep
    the index current too, so a run of refused files does not re-read the whole log once per file."""
    dt = ctx.lake.table(*INGEST_BATCHES.ref)
    cached = _INDEX.get(dt.table_uri)
    if cached is not None and cached[0] == dt.version() - 1:
        _INDEX[dt.table_uri] = (dt.version(), cached[1])


_DELIVERY_DATE = re.compile(r"(?:^|__)(\d{8})(?:__|\.|-|$)")


def delivery_date(path: Path, given: date | None, now: datetime) -> date:
    """The day the node delivered the file: given explicitly, else the ``<YYYYMMDD>`` of the naming
    convention ``<dataset>__<node>__<YYYYMMDD>__<seq>.<ext>``, else today (timeliness is judged on it)."""
    if given is not None:
        return given
    m = _DELIVERY_DATE.search(path.name)
    if m:
        try:
            return datetime.strptime(m.group(1), "%Y%m%d").date()
        except ValueError:
            pass
    return now.astimezone(SHANGHAI).date()


def ingest_file(ctx: Context, path: Path, node: str, dataset: str,
                progress: Callable[[int], None] | None = None, delivered_on: date | None = None) -> IngestResult:
    """Ingest one file; never raises for a bad file (the result says refused), only for lake failures.

    The run is an OpenLineage job ``ingest.<dataset>``: the delivered file in, bronze out (FAIL if refused)."""
    from govlake.lineage_events import DatasetRef

    src = DatasetRef("file", mask_ids(Path(path).name), files=mask_ids(str(Path(path).resolve())))
    # Under the writer lock the exactly-once checks (batch log, bronze app transaction) see every commit of
    # every other process: two ingests of one file at once land it once.
    with ctx.lake.writer_lock(f"govlake ingest {dataset}"), \
            ctx.lineage.run(f"ingest.{dataset}", [src], [DatasetRef("bronze", dataset)], engine="pyarrow",
                            description=f"{node} 报送文件导入原始层 bronze.{dataset}") as ol:
        result = _ingest_file(ctx, path, node, dataset, progress, delivered_on)
        ol.output("bronze", dataset).rows = result.rows if result.status == IngestStatus.INGESTED else 0
        if result.status == IngestStatus.REFUSED:
            ol.fail(result.message)
    return result


def _ingest_file(ctx: Context, path: Path, node: str, dataset: str,
                 progress: Callable[[int], None] | None = None, delivered_on: date | None = None) -> IngestResult:
    contract = ctx.contract(dataset)
    result = IngestResult(file=str(path), dataset=dataset, node=node, status=IngestStatus.REFUSED)
    now = datetime.now(timezone.utc)
    delivered = delivery_date(path, delivered_on, now)
    if not path.is_file():  # a directory, a FIFO (never opened: reading it would block), a missing path
        exc = DeliveryRefused("不是可读取的普通文件（不存在，或是目录、管道等）", where=str(path),
                              hint="检查路径与权限，报送的应是单个数据文件")
        result.message = str(exc)
        result.batch_id = batch_id_for(dataset, node, f"not-a-file:{path}")
        _log_refusal(ctx, exc, batch_id=result.batch_id, dataset=dataset, node=node, source_file=str(path),
                     content_hash=None, size_bytes=None, ingested_at=now, delivered_on=delivered)
        return result
    digest = content_hash(path)
    batch_id = batch_id_for(dataset, node, digest)
    result.batch_id = batch_id
    app_id = f"govlake-ingest-{batch_id}"

    prior = previous_batch(ctx, dataset, node, digest)
    if prior:
        result.status, result.rows = IngestStatus.DUPLICATE, prior["rows"]
        result.message = f"该文件内容已于 {prior['ingested_at']:%Y-%m-%d %H:%M} 导入（批次 {batch_id}，{prior['rows']} 行），本次不重复导入"
        return result

    size = path.stat().st_size
    info = None
    counted = {"rows": 0}
    try:
        if ctx.lake.txn_version("bronze", dataset, app_id):
            # Bronze committed but the batch log was not written (crash in between): recover the log only.
            rows = _recover_batch_log(ctx, dataset, node, path, digest, batch_id, size, now, delivered)
            result.status, result.rows = IngestStatus.DUPLICATE, rows
            result.message = f"该文件已写入 bronze（批次 {batch_id}），已补记导入日志"
            return result
        info, stream = open_delivery(path, contract)
        first, stream = peek(stream)  # header problems are raised here, before any write
        schema = bronze_schema(ctx, dataset)
        meta_values = [node, str(path), digest, batch_id]

        # A refusal found after the first batch is raised inside delta-rs's write, which aborts the
        # transaction but re-raises it wrapped (DeltaError, ArrowInvalid ...): keep the original to report.
        stopped: list[DeliveryRefused] = []

        def with_meta() -> Iterator[pa.RecordBatch]:
            try:
                for b in stream:
                    n = b.num_rows
                    counted["rows"] += n
                    if progress:
                        progress(n)
                    cols = list(b.columns) + [pa.repeat(pa.scalar(v, pa.string()), n) for v in meta_values]
                    cols.append(pa.repeat(pa.scalar(now, pa.timestamp("us", tz="UTC")), n))
                    yield pa.RecordBatch.from_arrays(cols, schema=schema)
            except DeliveryRefused as exc:
                stopped.append(exc)
                raise

        reader = pa.RecordBatchReader.from_batches(schema, with_meta())
        try:
            ctx.lake.append(
                "bronze", dataset, reader,
                commit=ctx.lake.commit(app_id, batch_id=batch_id, node=node, file=path.name, job="ingest",
                                       **header_facts(info)),
                description=BRONZE.description(contract.title),
            )
        except Exception:
            if stopped:
                raise stopped[0] from None
            raise
    except DeliveryRefused as exc:
        result.message = str(exc)
        _log_refusal(ctx, exc, batch_id=batch_id, dataset=dataset, node=node, source_file=str(path),
                     content_hash=digest, format=info.format if info else None,
                     encoding=info.encoding if info else None, size_bytes=size, ingested_at=now,
                     delivered_on=delivered)
        return result
    version = ctx.lake.table("bronze", dataset).version()
    hdr = info.header
    ctx.lake.append(*INGEST_BATCHES.ref, _batch_log_row(
        batch_id=batch_id, dataset=dataset, node=node, source_file=str(path), content_hash=digest,
        size_bytes=size, rows=counted["rows"], **header_facts(info),
        ragged_rows=info.ragged_rows, skipped_lines=json.dumps([scrub(line) for line in info.skipped_lines], ensure_ascii=False),
        status=IngestStatus.INGESTED, message="", ingested_at=now, bronze_version=version, delivered_on=delivered,
    ), commit=ctx.lake.commit(f"govlake-batchlog-{batch_id}"))
    remember_batch(ctx, dataset, node, digest, counted["rows"], now)
    result.status, result.rows, result.ragged_rows = IngestStatus.INGESTED, counted["rows"], info.ragged_rows
    drift = []
    if hdr and hdr.extra:
        drift.append(f"未登记的列：{'、'.join(scrub(h) for h in hdr.extra)}")
    if hdr and hdr.missing:
        drift.append(f"缺少的字段：{'、'.join(contract.field(m).title for m in hdr.missing)}")
    result.message = "；".join(drift)
    return result


def _log_refusal(ctx: Context, exc: DeliveryRefused, **row: object) -> None:
    """The batch-log row of a refused file: every refusal is recorded, whatever stage refused it."""
    ctx.lake.append(*INGEST_BATCHES.ref, _batch_log_row(
        rows=0, status=IngestStatus.REFUSED, message=mask_ids(exc.message), **row))
    follow_index(ctx)


def header_facts(info: object) -> dict[str, str | None]:
    """The batch-log fields known once the header is read, before any row is written. They go into the
    bronze commit's metadata too, so a batch log lost to a crash after that commit is recovered whole."""
    hdr = info.header
    # Unknown header names are delivered text (a Parquet column may be named after a person): the log keeps
    # them redacted; bronze's ``_extra`` keeps them as delivered.
    header_map = {(h if f else scrub(h)): f for h, f in hdr.as_dict().items()} if hdr else {}
    return {
        "format": info.format, "encoding": info.encoding,
        "header_map": json.dumps(header_map, ensure_ascii=False),
        "unknown_headers": json.dumps([scrub(h) for h in hdr.extra] if hdr else [], ensure_ascii=False),
        "missing_fields": json.dumps(hdr.missing if hdr else [], ensure_ascii=False),
    }


def _recover_batch_log(ctx: Context, dataset: str, node: str, path: Path, digest: str, batch_id: str, size: int,
                       now: datetime, delivered: date) -> int:
    """Write the batch-log row of a batch whose bronze commit survived a crash: the header facts and the
    version from that commit (Delta log), the row and ragged-row counts from bronze itself."""
    t = ctx.lake.read("bronze", dataset, columns=["_raw", "_ingested_at"], filter_sql=f"_batch_id = '{batch_id}'")
    if t.num_rows:
        import pyarrow.compute as pc

        now = pc.max(t.column("_ingested_at")).as_py()  # when it landed, not when it was repaired
    found = ctx.lake.commit_metadata("bronze", dataset, batch_id=batch_id)
    version, meta = found if found else (None, {})
    facts = {k: meta.get(k) for k in ("format", "encoding", "header_map", "unknown_headers", "missing_fields")}
    ctx.lake.append(*INGEST_BATCHES.ref, _batch_log_row(
        batch_id=batch_id, dataset=dataset, node=node, source_file=str(path), content_hash=digest,
        size_bytes=size, rows=t.num_rows, ragged_rows=t.num_rows - t.column("_raw").null_count, status=IngestStatus.INGESTED,
        message="recovered batch log", ingested_at=now, bronze_version=version, delivered_on=delivered, **facts,
    ), commit=ctx.lake.commit(f"govlake-batchlog-{batch_id}"))
    remember_batch(ctx, dataset, node, digest, t.num_rows, now)
    return t.num_rows


def ingest(ctx: Context, paths: list[Path], node: str, dataset: str,
           progress: Callable[[int], None] | None = None, delivered_on: date | None = None) -> list[IngestResult]:
    """Ingest several files for one node and dataset; each file is its own transaction."""
    contract = ctx.contract(dataset)
    ctx.registry.node(node)
    allowed = ctx.registry.deliverers(contract)
    if node not in allowed:
        owners = "、".join(ctx.registry.node(n).label for n in allowed[:5])
        raise RegistryError(
            f"节点 {ctx.registry.node(node).label} 不是数据集 {dataset}（{contract.title}）的报送节点",
            hint=f"该数据集由 {owners} 报送；如职责有变化，请更新契约 {contract.path.name if contract.path else ''} 的 delivered_by",
        )
    with ctx.lake.writer_lock(f"govlake ingest {dataset}"):  # one acquisition for the whole list
        return [ingest_file(ctx, Path(p), node, dataset, progress, delivered_on) for p in paths]


def summary_dict(r: IngestResult) -> dict:
    return asdict(r)


__all__ = ["IngestResult", "ingest", "ingest_file", "GovlakeError"]
