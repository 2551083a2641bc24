"""Pseudonymization key handling.

Silver holds HMAC-SHA256 pseudonyms of personal identifiers. The key comes from GOVLAKE_PSEUDONYM_KEY in
production (a secret store); an embedded local lake keeps a random per-lake key in ``_secrets/`` (mode 600)
so pseudonyms are stable across runs. The key never appears in logs, events or tables.
"""

from __future__ import annotations

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
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())
