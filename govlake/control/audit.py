"""The tamper-evident audit log: every query and every workflow step, with the authenticated user.

Rows live in the control-plane table ``audit_log`` and form a hash chain: each row's ``hash`` is an HMAC
(under a purpose key derived from the lake's secret, ``security.keyed_digest``) of the previous row's hash and
the row's own canonical content. Editing, deleting or reordering any row breaks every later link, and nobody
without the key can forge a consistent chain; ``govlake audit verify`` walks it. Appends are serialised
(SQLite ``BEGIN IMMEDIATE``; PostgreSQL a transaction-scoped advisory lock), so concurrent writers (the
pg-wire endpoint's threads, the dashboard, the CLI) never fork the chain.

No row holds a literal personal value: ``detail`` is a masked statement or a workflow summary written by
us, ``digest`` a keyed digest of the full text. Callers fail closed: if ``record`` raises, the result of what
was being audited is withheld.
"""

from __future__ import annotations

import hmac
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa

from govlake.control.db import control_engine
from govlake.control.principal import Principal
from govlake.control.schema import audit_log
from govlake.errors import GovlakeError
from govlake.project import Settings
from govlake.security import keyed_digest

CHAIN_PURPOSE = "audit_chain"
ANCHOR_PURPOSE = "audit_anchor"
DIGEST_PURPOSE = "audit_statement"  # digests of audited statements: never equal to a pseudonym
GENESIS = "0" * 64
_PG_LOCK_KEY = 0x60F1A4E  # advisory lock id of the chain head (any constant unique to govlake)
_CHAINED = ("seq", "at", "user_name", "node", "role", "auth", "action", "outcome", "grant_ids", "tables",
            "rows", "detail", "digest", "request_id")


class AuditError(GovlakeError):
    """The audit log could not be written or does not verify."""

    exit_code = 3


@dataclass
class AuditEvent:
    """One audit row before it is chained (``at`` defaults to now, UTC)."""

    action: str
    outcome: str
    tables: Sequence[str] = ()
    grant_ids: Sequence[int] = ()
    rows: int | None = None
    detail: str | None = None
    digest_text: str | None = None  # the full text to digest (a statement); never stored itself
    request_id: str | None = None
    at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


@dataclass(frozen=True)
class Actor:
    """Who an audit row is about: an authenticated principal, or a name that failed to authenticate."""

    user_name: str
    node: str | None
    role: str | None
    auth: str

    @classmethod
    def of(cls, principal: Principal) -> "Actor":
        return cls(principal.name, principal.node, principal.role, principal.auth)

    @classmethod
    def anonymous(cls, claimed: str, auth: str) -> "Actor":
        """A login attempt that did not authenticate: the claimed name is kept (it is not personal data of
        the lake) but marked, so it can never be read as an authenticated user."""
        return cls(f"?{claimed[:60]}", None, None, auth)


def _canonical(row: dict) -> str:
    def norm(v):
        if isinstance(v, datetime):  # SQLite returns the stored UTC value naive: never read it as local time
            return (v if v.tzinfo else v.replace(tzinfo=timezone.utc)).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return v

    return json.dumps({k: norm(row[k]) for k in _CHAINED}, ensure_ascii=False, sort_keys=True, default=str)


def _link(settings: Settings, prev_hash: str, row: dict) -> str:
    return keyed_digest(settings, CHAIN_PURPOSE, prev_hash + "\n" + _canonical(row))


def record(settings: Settings, actor: Actor | Principal, *events: AuditEvent) -> list[int]:
    """Append ``events`` (in order, one transaction) and return their sequence numbers; raise AuditError if
    they cannot be written, so the caller withholds whatever was being audited."""
    who = actor if isinstance(actor, Actor) else Actor.of(actor)
    try:
        engine = control_engine(settings)
        with engine.begin() as con:
            _lock_head(con)
            head = con.execute(sa.select(audit_log.c.seq, audit_log.c.hash)
                               .order_by(audit_log.c.seq.desc()).limit(1)).first()
            seq, prev = (head[0], head[1]) if head else (0, GENESIS)
            seqs = []
            for ev in events:
                seq += 1
                row = {
                    "seq": seq, "at": ev.at, "user_name": who.user_name, "node": who.node, "role": who.role,
                    "auth": who.auth, "action": ev.action, "outcome": ev.outcome,
                    "grant_ids": sorted(set(ev.grant_ids)) or None, "tables": sorted(set(ev.tables)) or None,
                    "rows": ev.rows, "detail": ev.detail, "request_id": ev.request_id,
                    "digest": keyed_digest(settings, DIGEST_PURPOSE, ev.digest_text) if ev.digest_text else None,
                }
                row["prev_hash"] = prev
                row["hash"] = prev = _link(settings, prev, row)
                con.execute(audit_log.insert().values(**row))
                seqs.append(seq)
            _write_anchor(settings, seq, prev)  # still under the append lock: anchors advance in order
        return seqs
    except AuditError:
        raise
    except Exception as exc:
        raise AuditError("无法写入审计日志，为安全起见本次操作的结果不予返回",
                         where=_where(settings),
                         hint="检查控制库（GOVLAKE_CONTROL_DB）是否可写、密钥是否可用，然后重试") from exc


def _lock_head(con: sa.Connection) -> None:
    """Serialise appenders for the rest of the transaction."""
    if con.dialect.name == "sqlite":
        # pysqlite begins a deferred transaction; a no-op write takes the database's write lock now, so
        # reading the head and appending after it cannot interleave with another writer.
        con.exec_driver_sql("UPDATE audit_log SET seq = seq WHERE 0")
    elif con.dialect.name == "postgresql":
        con.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")


def _where(settings: Settings) -> str:
    return f"控制库 {settings.describe()['control_db']} 的 audit_log 表"


@dataclass(frozen=True)
class Verification:
    ok: bool
    rows: int
    first_bad: int | None = None  # seq of the first row that does not verify
    problem: str | None = None    # what is wrong there, in Chinese
    head: tuple[int, str] | None = None  # (seq, hash) of the last row, when the chain verifies


# -- the head anchor -------------------------------------------------------------------------------------
# A chain proves every row against its predecessors, not that the newest rows are still there: deleting the
# tail leaves a shorter chain that verifies. The head (seq, hash) is therefore also kept outside the
# database, HMAC'ed under the chain key: beside the lake's secret for a local lake, and printed by
# ``govlake audit verify`` so that operators can record it elsewhere and check it with ``--head SEQ:HASH``.

def anchor_path(settings: Settings) -> Path | None:
    """Where a local lake keeps the audit head (None for object-store lakes: record the printed head)."""
    return Path(settings.lake_root) / "_secrets" / "audit.head" if settings.is_local else None


def _anchor_text(settings: Settings, seq: int, head: str) -> str:
    return json.dumps({"seq": seq, "hash": head, "mac": keyed_digest(settings, ANCHOR_PURPOSE, f"{seq}:{head}")})


def _write_anchor(settings: Settings, seq: int, head: str) -> None:
    path = anchor_path(settings)
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    tmp.write_text(_anchor_text(settings, seq, head), encoding="utf-8")
    os.replace(tmp, path)


def read_anchor(settings: Settings) -> tuple[int, str] | None:
    """The recorded head, or None if none was recorded; raises AuditError if the anchor was forged."""
    path = anchor_path(settings)
    if path is None or not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        seq, head = int(data["seq"]), str(data["hash"])
        genuine = hmac.compare_digest(str(data["mac"]), keyed_digest(settings, ANCHOR_PURPOSE, f"{seq}:{head}"))
    except (ValueError, KeyError, TypeError):
        genuine = False
    if not genuine:
        raise AuditError("审计日志的链头锚点被篡改或损坏", where=str(path),
                         hint="从备份恢复控制库与锚点文件后重新校验，并调查该文件被谁修改")
    return seq, head


def verify(settings: Settings, head: tuple[int, str] | None = None) -> Verification:
    """Walk the chain from the first row: every seq present in order, every prev_hash the previous row's
    hash, every hash the HMAC of its content; then the head: the chain must reach the recorded anchor (and
    ``head``, one recorded elsewhere) with the same hash, or rows were cut off its end. The first break is
    reported."""
    engine = control_engine(settings)
    prev, expected, n = GENESIS, 1, 0
    hashes: dict[int, str] = {}
    anchors = [a for a in (read_anchor(settings), head) if a is not None]
    with engine.connect() as con:
        for r in con.execute(sa.select(audit_log).order_by(audit_log.c.seq)).mappings():
            row = dict(r)
            n += 1
            if row["seq"] != expected:
                return Verification(False, n, row["seq"], f"序号不连续：应为 {expected}，实为 {row['seq']}（有记录被删除或插入）")
            if row["prev_hash"] != prev:
                return Verification(False, n, row["seq"], "前序哈希不符（上一条记录被删除、替换或重排）")
            if _link(settings, prev, row) != row["hash"]:
                return Verification(False, n, row["seq"], "记录内容与其哈希不符（该记录被修改）")
            if any(a[0] == row["seq"] for a in anchors):
                hashes[row["seq"]] = row["hash"]
            prev, expected = row["hash"], expected + 1
    for seq, want in anchors:
        if seq >= expected:
            return Verification(False, n, expected, f"记录到第 {expected - 1} 条为止，而链头锚点记录到第 {seq} 条"
                                                    "（末尾的记录被删除）")
        if seq > 0 and hashes.get(seq) != want:
            return Verification(False, n, seq, "该记录的哈希与链头锚点不符（记录被替换）")
    return Verification(True, n, head=(expected - 1, prev))


def rows(settings: Settings, *, user: str | None = None, action: str | None = None,
         limit: int = 100) -> list[dict]:
    """The newest audit rows, newest first (for ``govlake audit list``)."""
    q = sa.select(audit_log).order_by(audit_log.c.seq.desc()).limit(limit)
    if user:
        q = q.where(audit_log.c.user_name == user)
    if action:
        q = q.where(audit_log.c.action.like(f"{action}%"))
    with control_engine(settings).connect() as con:
        return [dict(r) for r in con.execute(q).mappings()]
