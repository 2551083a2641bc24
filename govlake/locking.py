"""One writer at a time per lake: a lock every writing job (ingest, ``govlake run``, the Airflow tasks) holds
for its whole duration.

Why a lock and not only Delta's optimistic concurrency: two ingests of one file into an empty table both
see "no app transaction yet" and both commit (the second as version 1), and two first builds of silver both
create the table from the same batches, so every key lands twice. delta-rs on S3 has no safe commit without
an external lock either. Serializing writers makes the exactly-once checks (the app transaction, the batch
log, the pending batches) hold across processes, because each writer re-reads them after acquiring.

* **Local lake:** ``fcntl.flock`` on ``<lake>/_locks/writer.lock``. The OS releases it when the process
  ends, however it ends (``kill -9`` included), so a lock is never stale.
* **S3 lake:** a lease object ``<prefix>/_locks/writer.lock`` created with a conditional PUT
  (``If-None-Match: *``), renewed by a heartbeat thread (``If-Match`` on our own ETag) and deleted on
  release. A process that dies stops renewing; the next writer breaks the lease only once it has not been
  renewed for ``GOVLAKE_LOCK_TTL`` seconds by the object store's own clock (no clock skew between hosts).
  The store must honour conditional writes (AWS S3 since 2024, MinIO, moto 5); no DynamoDB is needed.

Waiting is bounded (``GOVLAKE_LOCK_TIMEOUT`` seconds, default 600) and says who holds the lock. The lock is
re-entrant within a thread, so ``run_demo`` → ``ingest_file`` → … takes it once. On first acquisition the
temporary files a killed writer left in the table directories are removed (see :func:`sweep_orphans`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from govlake.errors import PipelineError

log = logging.getLogger(__name__)

LOCK_NAME = "_locks/writer.lock"
PROGRESS_EVERY = 10.0  # seconds between "still waiting" messages

# Temporary names writers use before an atomic rename: object_store's local staging files
# (``part-….parquet#1``, ``_delta_log/00…1.json#2``) and delta-rs' commit temp files.
TEMP_FILE = re.compile(r"(#\d+|^_commit_[0-9a-fA-F-]+\.json\.tmp)$")


class LakeBusy(PipelineError):
    """Another govlake process kept the lake's writer lock longer than this one was willing to wait."""


@dataclass
class Holder:
    """Who holds (or held) the lock: written into the lock so a waiting process can say whom it waits for."""

    job: str
    pid: int = field(default_factory=os.getpid)
    host: str = field(default_factory=socket.gethostname)
    since: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    owner: str = field(default_factory=lambda: uuid.uuid4().hex)

    def to_json(self) -> bytes:
        return json.dumps(self.__dict__, ensure_ascii=False).encode("utf-8")

    @staticmethod
    def describe(raw: bytes | str | None) -> str:
        try:
            h = json.loads(raw or b"")
            return f"{h['job']}，进程 {h['pid']}@{h['host']}，自 {h['since']}（UTC）起"
        except (ValueError, KeyError, TypeError):
            return "持有者未知"


# -- the two backends ---------------------------------------------------------------------------------------

class _LocalLock:
    def __init__(self, root: str) -> None:
        self.path = Path(root) / LOCK_NAME
        self.fd: int | None = None

    @property
    def where(self) -> str:
        return str(self.path)

    def try_acquire(self, holder: Holder) -> bool:
        import fcntl

        if self.fd is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                raise _unwritable(self.where, exc) from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, holder.to_json(), 0)
        return True

    def current_holder(self) -> str:
        try:
            return Holder.describe(self.path.read_bytes())
        except OSError:
            return Holder.describe(None)

    def release(self) -> None:
        import fcntl

        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


class _S3Lease:
    """A lease object: created only if absent, renewed only if still ours, broken only once expired."""

    def __init__(self, root: str, storage_options: dict[str, str], ttl: float) -> None:
        self.bucket, _, prefix = root.split("://", 1)[1].partition("/")
        self.key = f"{prefix.strip('/')}/{LOCK_NAME}".lstrip("/")
        self.s3 = s3_client(storage_options)
        self.ttl = ttl
        self.etag: str | None = None
        self.lost = False
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    @property
    def where(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def try_acquire(self, holder: Holder) -> bool:
        from botocore.exceptions import ClientError

        try:
            resp = self.s3.put_object(Bucket=self.bucket, Key=self.key, Body=holder.to_json(), IfNoneMatch="*")
        except ClientError as exc:
            if _status(exc) not in (409, 412):  # 409: a concurrent conditional write is in flight
                raise
            self._break_if_expired()
            return False
        self.etag = resp["ETag"]
        self._holder = holder
        self._beat = threading.Thread(target=self._heartbeat, name="govlake-lease", daemon=True)
        self._beat.start()
        return True

    def _break_if_expired(self) -> None:
        """Delete the lease if its holder stopped renewing it (judged on the store's clock); ``If-Match``
        makes sure it is the lease we judged, not one a live writer just created or renewed."""
        from botocore.exceptions import ClientError

        try:
            head = self.s3.head_object(Bucket=self.bucket, Key=self.key)
        except ClientError:
            return  # gone meanwhile: the next attempt creates it
        from email.utils import parsedate_to_datetime

        now = parsedate_to_datetime(head["ResponseMetadata"]["HTTPHeaders"]["date"])
        if (now - head["LastModified"]).total_seconds() <= self.ttl:
            return
        try:
            self.s3.delete_object(Bucket=self.bucket, Key=self.key, IfMatch=head["ETag"])
            log.warning("broke the expired writer lease %s (not renewed for over %.0f s)", self.where, self.ttl)
        except ClientError:
            pass  # renewed or broken by someone else in between

    def _heartbeat(self) -> None:
        from botocore.exceptions import ClientError

        while not self._stop.wait(self.ttl / 3):
            try:
                resp = self.s3.put_object(Bucket=self.bucket, Key=self.key, Body=self._holder.to_json(), IfMatch=self.etag)
                self.etag = resp["ETag"]
            except ClientError as exc:
                if _status(exc) in (404, 412):
                    self.lost = True
                    log.error("the writer lease %s was lost (not renewed in time); another writer may start", self.where)
                    print(f"警告：写入锁租约 {self.where} 已失效（未能及时续约），其他进程可能开始写入该湖", file=sys.stderr)
                    return
                log.warning("could not renew the writer lease %s: %s", self.where, exc)
            except Exception as exc:  # network trouble: keep trying until the lease expires
                log.warning("could not renew the writer lease %s: %s", self.where, exc)

    def abort_orphan_uploads(self, older_than: float) -> list[str]:
        """The object-store twin of :func:`sweep_orphans`: multipart uploads a killed writer started under the
        lake's prefix (invisible, but stored and billed) are aborted. Best effort: a failure is only logged."""
        prefix = self.key[: -len(LOCK_NAME)]
        aborted: list[str] = []
        try:
            resp = self.s3.list_multipart_uploads(Bucket=self.bucket, Prefix=prefix)
            for up in resp.get("Uploads", []):
                if up["Initiated"].timestamp() < older_than:
                    self.s3.abort_multipart_upload(Bucket=self.bucket, Key=up["Key"], UploadId=up["UploadId"])
                    aborted.append(up["Key"])
        except Exception as exc:
            log.warning("could not list or abort orphaned multipart uploads under s3://%s/%s: %s", self.bucket, prefix, exc)
        return aborted

    def current_holder(self) -> str:
        try:
            return Holder.describe(self.s3.get_object(Bucket=self.bucket, Key=self.key)["Body"].read())
        except Exception:
            return Holder.describe(None)

    def release(self) -> None:
        from botocore.exceptions import ClientError

        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=5)
        if self.etag and not self.lost:
            try:
                self.s3.delete_object(Bucket=self.bucket, Key=self.key, IfMatch=self.etag)
            except ClientError as exc:
                log.warning("could not delete the writer lease %s: %s", self.where, exc)
        self.etag = None


def s3_client(storage_options: dict[str, str], config: Any = None) -> Any:
    """A boto3 client for the lake's endpoint and credentials (the same settings delta-rs is given)."""
    import boto3
    from botocore.config import Config

    opts = storage_options or {}
    return boto3.client(
        "s3", endpoint_url=opts.get("AWS_ENDPOINT_URL"), region_name=opts.get("AWS_REGION") or "us-east-1",
        aws_access_key_id=opts.get("AWS_ACCESS_KEY_ID"), aws_secret_access_key=opts.get("AWS_SECRET_ACCESS_KEY"),
        config=config or Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 3}),
    )


def probe_object_store(root: str, storage_options: dict[str, str]) -> None:
    """One quick request (no retries) to the lake's bucket; a failure becomes a message saying what is wrong
    (endpoint, credentials or bucket) and which setting to fix, never a botocore or delta-rs trace."""
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

    from govlake.errors import ConfigError

    bucket = root.split("://", 1)[1].split("/", 1)[0]
    endpoint = (storage_options or {}).get("AWS_ENDPOINT_URL") or "AWS S3 默认地址"
    where = f"数据湖 {root}（对象存储 {endpoint}）"
    s3 = s3_client(storage_options, Config(connect_timeout=3, read_timeout=10, retries={"max_attempts": 1}))
    try:
        s3.head_bucket(Bucket=bucket)
    except NoCredentialsError:
        raise ConfigError("未提供对象存储的访问凭据", where=where,
                          hint="设置环境变量 AWS_ACCESS_KEY_ID 与 AWS_SECRET_ACCESS_KEY") from None
    except ClientError as exc:
        status = _status(exc)
        if status == 404:
            raise ConfigError(f"对象存储中不存在桶 {bucket}", where=where,
                              hint="先创建该桶，或检查 --lake / GOVLAKE_LAKE 中的桶名") from None
        if status in (401, 403):
            raise ConfigError("对象存储拒绝了访问（凭据无效或无权访问该桶）", where=where,
                              hint="检查 AWS_ACCESS_KEY_ID、AWS_SECRET_ACCESS_KEY 是否正确，以及该凭据对桶的读写权限") from None
        raise ConfigError(f"对象存储返回错误（HTTP {status}）", where=where,
                          hint="检查 GOVLAKE_S3_ENDPOINT、AWS_REGION 与桶名是否对应同一个对象存储服务") from None
    except (EndpointConnectionError, BotoCoreError, OSError) as exc:
        kind = "连接被拒绝或超时" if isinstance(exc, EndpointConnectionError) else type(exc).__name__
        raise PipelineError(f"无法连接对象存储（{kind}）", where=where,
                            hint="检查 GOVLAKE_S3_ENDPOINT 的地址与端口是否正确、服务是否已启动、网络是否可达") from None


def _status(exc: Any) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def _unwritable(where: str, exc: OSError) -> PipelineError:
    import errno

    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        what, hint = "数据湖只读或当前用户无写权限", "检查数据湖目录的挂载方式与权限，或用 --lake 指向可写的位置"
    elif exc.errno == errno.ENOSPC:
        what, hint = "磁盘空间已满", "清理磁盘空间后重试；数据湖保持在上一次成功提交的状态"
    else:
        what, hint = f"无法创建写入锁（{exc.strerror}）", "检查数据湖目录是否存在且可写"
    return PipelineError(f"{what}，无法开始写入", where=where, hint=hint)


# -- the lock ------------------------------------------------------------------------------------------------

_held: dict[tuple[str, int], list[Any]] = {}  # (lake root, thread) -> [backend, depth]
_held_guard = threading.Lock()


@contextmanager
def writer_lock(lake: Any, job: str, timeout: float | None = None,
                on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the lake's writer lock for the block (re-entrant within a thread).

    ``lake`` is a :class:`govlake.lake.Lake`. Waits up to ``timeout`` seconds (default
    ``GOVLAKE_LOCK_TIMEOUT``), reporting progress through ``on_wait`` (default: stderr), then raises
    :class:`LakeBusy`. Orphaned temp files are swept once the lock is first acquired."""
    key = (lake.root, threading.get_ident())
    with _held_guard:
        entry = _held.get(key)
        if entry is not None:
            entry[1] += 1
    if entry is not None:
        try:
            yield
        finally:
            with _held_guard:
                entry[1] -= 1
        return
    settings = lake.settings  # GOVLAKE_LOCK_TIMEOUT / GOVLAKE_LOCK_TTL, resolved in govlake.project
    backend = _LocalLock(lake.root) if settings.is_local else _S3Lease(lake.root, settings.storage_options, settings.lock_ttl)
    wait = settings.lock_timeout if timeout is None else timeout
    acquired_at = _acquire(backend, Holder(job=job), wait, on_wait or _stderr, settings.lock_ttl)
    with _held_guard:
        _held[key] = [backend, 1]
    try:
        if lake.settings.is_local:
            removed = sweep_orphans(Path(lake.root), acquired_at)
        else:
            removed = backend.abort_orphan_uploads(acquired_at)
        if removed:
            log.warning("removed %d temporary files left by an interrupted writer: %s", len(removed), removed[:5])
        yield
    finally:
        with _held_guard:
            _held.pop(key, None)
        backend.release()


def holds_lock(lake: Any) -> bool:
    with _held_guard:
        return (lake.root, threading.get_ident()) in _held


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _acquire(backend: Any, holder: Holder, timeout: float, on_wait: Callable[[str], None], ttl: float) -> float:
    """Poll until acquired; returns the wall-clock time of acquisition (files older than it are orphans)."""
    started = time.monotonic()
    next_report = 0.0
    delay = 0.05
    while True:
        before = time.time()
        if backend.try_acquire(holder):
            return before
        waited = time.monotonic() - started
        if waited >= timeout:
            holder_text = backend.current_holder()
            backend.release()
            raise LakeBusy(
                f"另一个 govlake 进程正在写入该湖（{holder_text}），等待 {timeout:.0f} 秒后仍未释放写入锁",
                where=backend.where,
                hint="等该进程结束后重试，或设置环境变量 GOVLAKE_LOCK_TIMEOUT（秒）延长等待。本地湖的锁在持有进程退出"
                     "（包括被强制终止）时自动释放；对象存储湖的租约在持有进程停止续约后 "
                     f"{ttl:.0f} 秒失效，之后可被接管",
            )
        if waited >= next_report:
            on_wait(f"另一个 govlake 进程正在写入该湖（{backend.current_holder()}），等待其完成…"
                    f"（已等待 {waited:.0f} 秒，最长 {timeout:.0f} 秒）")
            next_report = waited + PROGRESS_EVERY
        time.sleep(min(delay, max(0.0, timeout - waited)))
        delay = min(delay * 2, 1.0)


def sweep_orphans(root: Path, older_than: float) -> list[str]:
    """Remove temporary files an interrupted writer left inside the lake's tables.

    Called under the writer lock, so no live writer is producing them: every file matching
    :data:`TEMP_FILE` that was last modified before the lock was acquired is an orphan (a Delta version
    never references such a name; committed files are renamed away from it). Returns the removed paths,
    relative to the lake."""
    removed: list[str] = []
    for layer in ("bronze", "silver", "quarantine", "gold", "meta"):
        base = root / layer
        if not base.is_dir():
            continue
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                if not TEMP_FILE.search(name):
                    continue
                p = Path(dirpath, name)
                try:
                    if p.stat().st_mtime < older_than:
                        p.unlink()
                        removed.append(str(p.relative_to(root)))
                except FileNotFoundError:
                    continue
    return removed
