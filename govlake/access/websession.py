"""Server-side web sessions of the dashboard, in the control-plane table ``web_sessions``.

Why server-side and not a signed cookie: logout, a disabled user and an idle timeout must end a session at
once, which only a row the server can revoke gives. The cookie holds 256 random bits
(``secrets.token_urlsafe(32)``); the table holds only its SHA-256, so a copy of the control database cannot
be replayed as cookies. Each session carries its own random CSRF token, which every POST form must echo.

Lifetimes: 8 hours absolute (``ABSOLUTE``), 30 minutes idle (``IDLE``). A fresh id is issued at every login
(no session fixation), and an expired, idle or revoked row never comes back to life.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from govlake.control.db import control_engine
from govlake.control.clock import now as _now, secret_digest as digest, utc as _aware
from govlake.control.schema import users, web_sessions
from govlake.project import Settings

COOKIE = "govlake_session"
ABSOLUTE = timedelta(hours=8)
IDLE = timedelta(minutes=30)
TOUCH_EVERY = timedelta(seconds=30)  # last_seen_at is rewritten at most this often (one write per page is waste)


@dataclass(frozen=True)
class WebSession:
    """A live session: whose it is and the CSRF token its forms carry."""

    id_hash: str
    user_id: int
    csrf_token: str
    expires_at: datetime

    def csrf_ok(self, submitted: str | None) -> bool:
        """Constant-time comparison, so the token cannot be guessed byte by byte from response times."""
        return bool(submitted) and hmac.compare_digest(submitted.encode("utf-8"), self.csrf_token.encode("utf-8"))


def open_session(settings: Settings, user_id: int, *, now: datetime | None = None) -> tuple[str, WebSession]:
    """A new session for ``user_id``: (the cookie value to send once, the row as stored)."""
    now = now or _now()
    value = secrets.token_urlsafe(32)
    row = {"id_hash": digest(value), "user_id": user_id, "csrf_token": secrets.token_urlsafe(32),
           "created_at": now, "expires_at": now + ABSOLUTE, "last_seen_at": now, "revoked_at": None}
    with control_engine(settings).begin() as con:
        con.execute(web_sessions.insert().values(**row))
    return value, WebSession(row["id_hash"], user_id, row["csrf_token"], row["expires_at"])


def lookup(settings: Settings, cookie_value: str | None, *, now: datetime | None = None) -> WebSession | None:
    """The live session a cookie names, or None (unknown, revoked, past 8 hours, idle 30 minutes, or its
    user disabled). A live session's idle clock is reset."""
    if not cookie_value or len(cookie_value) > 200:
        return None
    now = now or _now()
    q = (sa.select(web_sessions, users.c.disabled)
         .join(users, users.c.id == web_sessions.c.user_id)
         .where(web_sessions.c.id_hash == digest(cookie_value)))
    engine = control_engine(settings)
    with engine.connect() as con:
        row = con.execute(q).mappings().first()
    if row is None or row["revoked_at"] is not None or row["disabled"]:
        return None
    expires, seen = _aware(row["expires_at"]), _aware(row["last_seen_at"]) or _aware(row["created_at"])
    if now >= expires or now - seen >= IDLE:
        return None
    if now - seen >= TOUCH_EVERY:
        with engine.begin() as con:
            con.execute(web_sessions.update().where(web_sessions.c.id_hash == row["id_hash"])
                        .values(last_seen_at=now))
    return WebSession(row["id_hash"], row["user_id"], row["csrf_token"], expires)


def revoke(settings: Settings, session: WebSession, *, now: datetime | None = None) -> None:
    """Logout: the row is marked revoked (kept for the record), so the cookie is dead even if it was copied."""
    with control_engine(settings).begin() as con:
        con.execute(web_sessions.update().where(web_sessions.c.id_hash == session.id_hash)
                    .values(revoked_at=now or _now()))


def revoke_all(settings: Settings, user_id: int, *, now: datetime | None = None) -> int:
    """Every live session of a user (a disabled account, a reset password)."""
    with control_engine(settings).begin() as con:
        done = con.execute(web_sessions.update()
                           .where(web_sessions.c.user_id == user_id, web_sessions.c.revoked_at.is_(None))
                           .values(revoked_at=now or _now()))
    return done.rowcount or 0


def cookie_options(*, secure: bool) -> dict:
    """Set-Cookie attributes (Starlette ``set_cookie`` keywords): not readable by scripts, never sent on a
    request another site starts, Secure when TLS terminates in front. No Max-Age: the browser drops it when
    closed, and the server enforces the 8-hour limit whatever the browser keeps."""
    return {"httponly": True, "samesite": "strict", "path": "/", "secure": secure}


__all__ = ["ABSOLUTE", "COOKIE", "IDLE", "WebSession", "cookie_options", "digest", "lookup", "open_session",
           "revoke", "revoke_all"]
