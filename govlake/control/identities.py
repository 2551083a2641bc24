"""Users of the city service: who they are, how they prove it, and when they are shut out.

A user belongs to one node of 1+11+N (``catalog/nodes.yaml``) and holds one role (analyst < steward < admin).
Passwords are stored only as argon2id hashes (``argon2.PasswordHasher``, rehashed on login when the
parameters are raised); API tokens ``glk_<id>_<secret>`` only as the SHA-256 of the whole token (256 random
bits cannot be searched, so a fast digest suffices and lets the endpoint check a token per connection).

Authentication never tells a caller *why* it failed: an unknown user, a wrong password, a disabled or locked
account and a revoked token all raise the same ``AuthenticationFailed``, and an unknown user still costs one
argon2 verification, so neither the message nor the timing enumerates accounts. The real reason is written
to the audit log (``login`` rows), where the lake owner can read it.

Managing users (add, disable, reset, tokens) is the lake owner's act (``Principal.lake_owner``), and every
change is audited with that principal. Passwords are never echoed, logged or audited.
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from govlake.control import audit
from govlake.control.clock import now as _now, secret_digest as _token_digest, utc as _aware
from govlake.control.db import control_engine
from govlake.control.principal import ROLE_NAMES, ROLES, Grant, Principal
from govlake.control.schema import grants, tokens, users, web_sessions
from govlake.errors import AccessDenied, ConfigError, GovlakeError, RegistryError, did_you_mean
from govlake.project import Settings
from govlake.registry import Registry

MAX_FAILURES = 5                       # consecutive failures before the account is locked
LOCKOUT = timedelta(minutes=15)        # how long a locked account refuses even the right password
MIN_PASSWORD_LENGTH = 12
MAX_TOKEN_DAYS = 366
TOKEN_PREFIX = "glk_"
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_.-]{1,63}$")
GENERIC_FAILURE = "用户名或密码错误，或账号已停用/锁定"

_hasher = PasswordHasher()             # argon2id, RFC 9106 low-memory profile
_dummy_hash: str | None = None         # verified against for unknown users (constant-cost failure)


class AuthenticationFailed(GovlakeError):
    """Login refused. One message for every cause, so nothing about the account can be learnt from it;
    ``reason`` (unknown_user, bad_password, locked, disabled, expired_token, ...) is for the audit only."""

    exit_code: ClassVar[int] = 4

    def __init__(self, reason: str = "") -> None:
        super().__init__(GENERIC_FAILURE, hint="核对用户名和密码（或令牌）；多次失败后账号将锁定 15 分钟，请联系系统管理员")
        self.reason = reason


class IdentityError(ConfigError):
    """A user-management request is invalid (bad name, weak password, unknown user, wrong node for a role)."""


# -- helpers ------------------------------------------------------------------------------------------------

def _dummy() -> str:
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = _hasher.hash(secrets.token_urlsafe(16))
    return _dummy_hash


def _verify(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _dummy(), password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _require_owner(by: Principal) -> None:
    if not by.is_owner:
        raise AccessDenied(f"用户 {by.name} 无权管理账号", hint="账号管理只能由湖的属主在本机命令行执行（govlake users ...）")


def check_name(name: str) -> None:
    if not NAME_PATTERN.match(name or ""):
        raise IdentityError(f"用户名不合规：{name!r}", where="NAME",
                            hint="用户名以小写字母开头，只含小写字母、数字、下划线、点和连字符，长度 2–64")


def check_password(password: str, name: str | None = None) -> None:
    """At least MIN_PASSWORD_LENGTH characters of more than one class, and not containing the user name.
    The message never repeats the password."""
    hint = f"密码至少 {MIN_PASSWORD_LENGTH} 位，且须包含至少两类字符（小写字母、大写字母、数字、符号）"
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise IdentityError(f"密码过短：至少需要 {MIN_PASSWORD_LENGTH} 个字符", where="密码", hint=hint)
    classes = {("lower" if c.islower() else "upper" if c.isupper() else "digit" if c.isdigit() else "other")
               for c in password}
    if len(classes) < 2:
        raise IdentityError("密码过于简单：只含一类字符", where="密码", hint=hint)
    if name and name.lower() in password.lower():
        raise IdentityError("密码不得包含用户名", where="密码", hint=hint)


def _check_node_role(registry: Registry, node: str, role: str) -> None:
    if role not in ROLES:
        raise IdentityError(f"未知角色：{role}", where="--role",
                            hint=did_you_mean(role, set(ROLES)) or f"可选角色：{'、'.join(f'{r}（{ROLE_NAMES[r]}）' for r in ROLES)}")
    try:
        n = registry.node(node)
    except RegistryError as exc:
        raise RegistryError(exc.message, where="--node", hint=exc.hint) from None
    city = registry.city.code if registry.city else None
    if role == "admin" and n.code != city:
        raise IdentityError(f"系统管理员只能属于市级中心节点（{city}），不能属于 {n.label}", where="--node",
                            hint=f"将管理员建在节点 {city}，或为该节点的用户选择 steward / analyst 角色")
    if role == "steward" and n.kind not in ("department", "district"):
        raise IdentityError(f"数据管理员应属于部门或区节点，{n.label} 不是", where="--node",
                            hint="为部门或区节点建数据管理员；市级中心的管理者请用 admin 角色")


def _user_row(con: sa.Connection, name: str):
    return con.execute(sa.select(users).where(users.c.name == name)).mappings().first()


def _existing(con: sa.Connection, name: str):
    row = _user_row(con, name)
    if row is None:
        known = set(con.execute(sa.select(users.c.name)).scalars())
        raise IdentityError(f"没有用户 {name}", where="NAME",
                            hint=did_you_mean(name, known) or "用 govlake users list 查看已有用户")
    return row


def _audit(settings: Settings, by: Principal | audit.Actor, action: str, outcome: str, detail: str) -> None:
    audit.record(settings, by, audit.AuditEvent(action=action, outcome=outcome, detail=detail))


# -- management (lake owner) --------------------------------------------------------------------------------

def add_user(settings: Settings, registry: Registry, name: str, node: str, role: str, password: str | None,
             by: Principal, display_name: str | None = None) -> dict:
    """Create a user of ``node`` with ``role``. ``password`` None creates a token-only account."""
    _require_owner(by)
    check_name(name)
    _check_node_role(registry, node, role)
    if password is not None:
        check_password(password, name)
    engine = control_engine(settings)
    with engine.begin() as con:
        if _user_row(con, name) is not None:
            raise IdentityError(f"用户 {name} 已存在", where="NAME", hint="换一个用户名，或用 govlake users reset 重设其密码")
        now = _now()
        user_id = con.execute(users.insert().values(
            name=name, display_name=display_name, node=node, role=role,
            password_hash=_hasher.hash(password) if password is not None else None,
            disabled=False, failed_attempts=0, created_at=now, created_by=by.name,
            password_changed_at=now if password is not None else None,
        )).inserted_primary_key[0]
    _audit(settings, by, "users.add", "ok", f"user={name} node={node} role={role}")
    return {"id": user_id, "name": name, "node": node, "role": role}


def _status(row, now: datetime) -> str:
    if row["disabled"]:
        return "已停用"
    locked = _aware(row["locked_until"])
    return "已锁定" if locked and locked > now else "正常"


def list_users(settings: Settings) -> list[dict]:
    """Every user, by name, with a display status (正常 / 已停用 / 已锁定); never a hash."""
    now = _now()
    with control_engine(settings).connect() as con:
        rows = con.execute(sa.select(users).order_by(users.c.name)).mappings().all()
    return [{"id": r["id"], "name": r["name"], "display_name": r["display_name"], "node": r["node"],
             "role": r["role"], "status": _status(r, now), "created_at": _aware(r["created_at"]),
             "created_by": r["created_by"]} for r in rows]


def disable_user(settings: Settings, name: str, by: Principal) -> None:
    """Disable ``name`` and end their web sessions and API tokens at once."""
    _require_owner(by)
    now = _now()
    with control_engine(settings).begin() as con:
        row = _existing(con, name)
        con.execute(users.update().where(users.c.id == row["id"]).values(disabled=True))
        _end_credentials(con, row["id"], now)
    _audit(settings, by, "users.disable", "ok", f"user={name}")


def _end_credentials(con: sa.Connection, user_id: int, now: datetime) -> None:
    """Revoke every live API token and web session of the user."""
    con.execute(tokens.update().where(tokens.c.user_id == user_id, tokens.c.revoked_at.is_(None))
                .values(revoked_at=now))
    con.execute(web_sessions.update()
                .where(web_sessions.c.user_id == user_id, web_sessions.c.revoked_at.is_(None))
                .values(revoked_at=now))


def reset_password(settings: Settings, name: str, password: str, by: Principal) -> None:
    """Set a new password and clear the lockout (a disabled account stays disabled). A reset is what is
    done when a password may be known to someone else, so the user's web sessions and API tokens end too."""
    _require_owner(by)
    check_password(password, name)
    now = _now()
    with control_engine(settings).begin() as con:
        row = _existing(con, name)
        con.execute(users.update().where(users.c.id == row["id"]).values(
            password_hash=_hasher.hash(password), failed_attempts=0, locked_until=None,
            password_changed_at=now))
        _end_credentials(con, row["id"], now)
    _audit(settings, by, "users.reset", "ok", f"user={name}")


def issue_token(settings: Settings, name: str, by: Principal, label: str | None = None, days: int = 90) -> str:
    """A new API token for ``name``, valid ``days`` days. Returned once; only its digest is kept."""
    _require_owner(by)
    if not 1 <= int(days) <= MAX_TOKEN_DAYS:
        raise IdentityError(f"令牌有效期须在 1–{MAX_TOKEN_DAYS} 天之间，收到 {days}", where="--days")
    now = _now()
    with control_engine(settings).begin() as con:
        row = _existing(con, name)
        token_id = con.execute(tokens.insert().values(
            user_id=row["id"], token_hash=secrets.token_hex(32),  # placeholder until the id is known
            label=label, created_at=now, expires_at=now + timedelta(days=int(days)),
        )).inserted_primary_key[0]
        token = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
        con.execute(tokens.update().where(tokens.c.id == token_id).values(token_hash=_token_digest(token)))
    _audit(settings, by, "users.token", "ok", f"user={name} token_id={token_id} days={int(days)}")
    return token


def revoke_token(settings: Settings, token_id: int, by: Principal) -> None:
    _require_owner(by)
    with control_engine(settings).begin() as con:
        row = con.execute(sa.select(tokens.c.id, tokens.c.user_id, tokens.c.revoked_at)
                          .where(tokens.c.id == int(token_id))).first()
        if row is None:
            raise IdentityError(f"没有编号为 {token_id} 的令牌", where="TOKEN_ID",
                                hint="令牌编号是令牌 glk_<编号>_... 中的数字")
        if row.revoked_at is None:
            con.execute(tokens.update().where(tokens.c.id == row.id).values(revoked_at=_now()))
        owner = con.execute(sa.select(users.c.name).where(users.c.id == row.user_id)).scalar_one()
    _audit(settings, by, "users.revoke-token", "ok", f"user={owner} token_id={int(token_id)}")


# -- authentication -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Attempt:
    user: dict | None
    auth: str
    reason: str | None  # None: success


def _check_token(con: sa.Connection, user, secret: str, now: datetime) -> str | None:
    """None if ``secret`` is a live token of ``user``; otherwise the reason code."""
    parts = secret.split("_", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return "bad_token"
    row = con.execute(sa.select(tokens).where(tokens.c.id == int(parts[1]))).mappings().first()
    if row is None or user is None or row["user_id"] != user["id"] \
            or not hmac.compare_digest(row["token_hash"], _token_digest(secret)):
        return "bad_token" if user is not None else "unknown_user"
    if row["revoked_at"] is not None:
        return "revoked_token"
    if _aware(row["expires_at"]) is not None and _aware(row["expires_at"]) <= now:
        return "expired_token"
    con.execute(tokens.update().where(tokens.c.id == row["id"]).values(last_used_at=now))
    return None


def _attempt(settings: Settings, name: str, secret: str) -> _Attempt:
    now = _now()
    is_token = secret.startswith(TOKEN_PREFIX)
    auth = "token" if is_token else "password"
    with control_engine(settings).begin() as con:
        user = _user_row(con, name) if NAME_PATTERN.match(name or "") else None
        user = dict(user) if user is not None else None
        if is_token:
            reason = _check_token(con, user, secret, now)
        else:
            ok = _verify(user["password_hash"] if user else None, secret)  # always one argon2 verify
            reason = None if ok else ("unknown_user" if user is None else "bad_password")
        if user is None:
            return _Attempt(None, auth, reason or "unknown_user")
        locked = _aware(user["locked_until"])
        if user["disabled"]:
            reason = "disabled"
        elif locked is not None and locked > now:
            reason = "locked"
        if reason is None:
            values = {"failed_attempts": 0, "locked_until": None}
            if not is_token and _hasher.check_needs_rehash(user["password_hash"]):
                values["password_hash"] = _hasher.hash(secret)
            con.execute(users.update().where(users.c.id == user["id"]).values(**values))
        elif reason not in ("disabled", "locked") and not is_token:
            # A wrong token cannot be a guess (256 random bits); charging it to the account would let anyone
            # who walks token ids (glk_1_x, glk_2_x ...) lock their owners out. Passwords only.
            _count_failure(con, user["id"], now)
    return _Attempt(user, auth, reason)


def _count_failure(con: sa.Connection, user_id: int, now: datetime) -> None:
    """One more consecutive failure; the MAX_FAILURES-th locks the account for LOCKOUT and restarts the count."""
    con.execute(users.update().where(users.c.id == user_id)
                .values(failed_attempts=users.c.failed_attempts + 1))
    failures = con.execute(sa.select(users.c.failed_attempts).where(users.c.id == user_id)).scalar_one()
    if failures >= MAX_FAILURES:
        con.execute(users.update().where(users.c.id == user_id)
                    .values(failed_attempts=0, locked_until=now + LOCKOUT))


def authenticate(settings: Settings, registry: Registry, name: str, secret: str, channel: str) -> Principal:
    """The principal of ``name`` if ``secret`` is their password or one of their live API tokens; otherwise
    AuthenticationFailed (one message for every cause). Every attempt is audited (action ``login``), the
    failures with the real reason under the claimed name marked unauthenticated."""
    attempt = _attempt(settings, name, secret or "")
    if attempt.reason is not None:
        claimed = name if NAME_PATTERN.match(name or "") else "(invalid)"
        _audit(settings, audit.Actor.anonymous(claimed, channel), "login", "denied",
               f"reason={attempt.reason} channel={channel} auth={attempt.auth}")
        raise AuthenticationFailed(attempt.reason)
    principal = principal_for(settings, registry, attempt.user["id"], attempt.auth)
    _audit(settings, principal, "login", "ok", f"channel={channel} auth={attempt.auth}")
    return principal


def principal_for(settings: Settings, registry: Registry, user_id: int, auth: str) -> Principal:
    """The principal of an already-authenticated user (a web session, a token) with their live grants.
    A user disabled or removed since raises AuthenticationFailed."""
    now = _now()
    with control_engine(settings).connect() as con:
        user = con.execute(sa.select(users).where(users.c.id == user_id)).mappings().first()
        if user is None or user["disabled"]:
            raise AuthenticationFailed("disabled" if user is not None else "unknown_user")
        rows = con.execute(sa.select(grants).where(grants.c.user_id == user_id, grants.c.revoked_at.is_(None))
                           .order_by(grants.c.id)).mappings().all()
    live = tuple(g for g in (_grant(r) for r in rows) if g.live(now))
    node = registry.nodes.get(user["node"])
    district = user["node"] if node is not None and node.kind == "district" else None
    return Principal(name=user["name"], node=user["node"], role=user["role"], auth=auth, user_id=user["id"],
                     grants=live, district=district)


def _grant(row) -> Grant:
    return Grant(id=row["id"], dataset=row["dataset"], layer=row["layer"],
                 columns=tuple(row["columns"]) if row["columns"] is not None else None,
                 max_grade=row["max_grade"], row_scope=row["row_scope"], purpose=row["purpose"],
                 expires_at=_aware(row["expires_at"]), request_id=row["request_id"])
