"""Who is asking: the authenticated identity every request carries, with its live grants.

A ``Principal`` is built only by authentication (``identities.authenticate``, a web session, a token) or,
for the lake owner's local CLI, from the operating-system account that owns the files
(``Principal.lake_owner``): never from an environment variable or a flag. ``--role`` on the owner's CLI can
only narrow the owner's view (``narrowed``).
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from govlake.registry import Registry

ROLES = ("analyst", "steward", "admin")
ROLE_NAMES = {"analyst": "分析人员", "steward": "数据管理员", "admin": "系统管理员"}
ROLE_RANK = {r: i for i, r in enumerate(ROLES)}


@dataclass(frozen=True)
class Grant:
    """Read access to one dataset's silver (or quarantine) table, as granted on a sharing request.

    ``columns`` None means every field graded at most ``max_grade``; ``row_scope`` is a district code or
    None (the whole city)."""

    id: int
    dataset: str
    layer: str
    columns: tuple[str, ...] | None
    max_grade: int
    row_scope: str | None
    purpose: str
    expires_at: datetime
    request_id: int | None = None

    def live(self, now: datetime | None = None) -> bool:
        return self.expires_at > (now or datetime.now(timezone.utc))


@dataclass(frozen=True)
class Principal:
    """An authenticated user: name, node of 1+11+N, role, how they proved it, and their live grants."""

    name: str
    node: str
    role: str
    auth: str  # password / token / session / local-owner
    user_id: int | None = None
    grants: tuple[Grant, ...] = field(default_factory=tuple)
    district: str | None = None  # the node's district code when the node is a district node

    @property
    def is_owner(self) -> bool:
        return self.auth == "local-owner"

    @classmethod
    def lake_owner(cls, city_code: str) -> "Principal":
        """The OS account running the CLI on the lake's own files: the administrator of this deployment.
        Its name is the kernel's (effective uid), not ``$USER``, which anyone can set."""
        return cls(name=pwd.getpwuid(os.geteuid()).pw_name, node=city_code, role="admin", auth="local-owner")

    @classmethod
    def owner_of(cls, registry: "Registry") -> "Principal":
        """The lake owner of the deployment whose registry is ``registry`` (its city is the owner's node)."""
        return cls.lake_owner(registry.city.code if registry.city is not None else "")

    def narrowed(self, role: str) -> "Principal":
        """The same identity seeing only what ``role`` would (a role can only be lowered, never raised)."""
        if ROLE_RANK[role] > ROLE_RANK[self.role]:
            from govlake.errors import AccessDenied

            raise AccessDenied(f"用户 {self.name} 的角色为 {ROLE_NAMES[self.role]}，不能以 {ROLE_NAMES[role]} 身份查询",
                               hint="--role 只能缩小可见范围；需要更高权限请联系系统管理员")
        return replace(self, role=role)
