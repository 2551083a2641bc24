"""Pseudonymization key handling.

Silver holds HMAC-SHA256 pseudonyms of personal identifiers. The key comes from GOVLAKE_PSEUDONYM_KEY in
production (a secret store); an embedded local lake keeps a random per-lake key in ``_secrets/`` (mode 600)
so pseudonyms are stable across runs. The key never appears in logs, events or tables.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from govlake.errors import ConfigError
from govlake.project import Settings


def pseudonym_key(settings: Settings) -> bytes:
    if settings.pseudonym_key:
        return settings.pseudonym_key
    if not settings.is_local:
        raise ConfigError(
            "对象存储上的数据湖必须通过环境变量提供假名化密钥",
            hint="设置 GOVLAKE_PSEUDONYM_KEY（从密钥管理系统注入），不要写入代码或配置文件",
        )
    path = Path(settings.lake_root) / "_secrets" / "pseudonym.key"
    if not path.exists():
        _create_key(path)
    return bytes.fromhex(path.read_text().strip())


def _create_key(path: Path) -> None:
    """Write a new random key so that concurrent first runs agree on one key and no reader ever sees a
    half-written file: the key is written in full to a private temp file, then hard-linked into place, which
    fails (and the loser reads the winner's key) if another process got there first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)


def keyed_digest(settings: Settings, purpose: str, text: str) -> str:
    """HMAC-SHA256 of ``text`` under a key derived from the lake's secret for one ``purpose``.

    An unkeyed hash of a short secret (an ID number in a query's literal) is reversed by hashing the
    candidates; without the key that search is impossible. The per-purpose key (HMAC of the purpose under
    the lake's secret) keeps these digests unrelated to the pseudonyms of the same values, so an audit digest
    can never be joined to a silver pseudonym.
    """
    sub_key = hmac.new(pseudonym_key(settings), f"govlake:{purpose}".encode(), hashlib.sha256).digest()
    return hmac.new(sub_key, text.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
