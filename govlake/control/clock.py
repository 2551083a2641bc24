"""Time and secret digests as the control plane stores them.

Every stored timestamp is UTC. SQLite keeps ``DateTime(timezone=True)`` values without their offset and
hands them back naive, so everything read from the database passes through ``utc`` before it is compared.
Secrets of high entropy (API tokens, web-session ids) are stored as their SHA-256: a digest of 256 random
bits cannot be searched, and a stolen table opens no session.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import TypeVar

T = TypeVar("T")


def now() -> datetime:
    return datetime.now(timezone.utc)


def utc(value: T) -> T:
    """A naive datetime read back from the database, as the UTC moment it was written; anything else as is."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)  # type: ignore[return-value]
    return value


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()
