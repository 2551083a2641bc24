"""The control-plane tables (SQLAlchemy Core; the same DDL on SQLite and PostgreSQL).

Secrets are never stored: passwords as argon2id hashes, API tokens and web-session ids as SHA-256 digests
of high-entropy random values (a digest of 256 random bits cannot be searched). No column holds personal
data of the lake: a disputed record is named by its pseudonym or by a keyed digest of its key.

Timestamps are timezone-aware UTC. JSON-valued columns (column lists, tables touched) are stored as JSON.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON, Boolean, Column, DateTime, ForeignKey, Index, Integer, MetaData, String, Table, Text,
    UniqueConstraint,
)

metadata = MetaData()

UTC_TS = DateTime(timezone=True)

users = Table(
    "users", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),      # the login name
    Column("display_name", String(128)),
    Column("node", String(16), nullable=False),                   # a 1+11+N node code (catalog/nodes.yaml)
    Column("role", String(16), nullable=False),                   # analyst / steward / admin
    Column("password_hash", String(255)),                         # argon2id; None: token-only account
    Column("disabled", Boolean, nullable=False, default=False),
    Column("failed_attempts", Integer, nullable=False, default=0),
    Column("locked_until", UTC_TS),
    Column("created_at", UTC_TS, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("password_changed_at", UTC_TS),
)

tokens = Table(
    "api_tokens", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),  # SHA-256 hex of the whole token
    Column("label", String(128)),
    Column("created_at", UTC_TS, nullable=False),
    Column("expires_at", UTC_TS),
    Column("revoked_at", UTC_TS),
    Column("last_used_at", UTC_TS),
)

web_sessions = Table(
    "web_sessions", metadata,
    Column("id_hash", String(64), primary_key=True),              # SHA-256 hex of the cookie value
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UTC_TS, nullable=False),
    Column("expires_at", UTC_TS, nullable=False),
    Column("last_seen_at", UTC_TS),
    Column("revoked_at", UTC_TS),
)

grants = Table(
    "grants", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("dataset", String(64), nullable=False),                # a contract's dataset name
    Column("layer", String(16), nullable=False),                  # silver / quarantine
    Column("columns", JSON),                                      # list of field names; None: every field
    Column("max_grade", Integer, nullable=False),                 # fields graded above come back masked
    Column("row_scope", String(16)),                              # a district code; None: the whole city
    Column("purpose", Text, nullable=False),
    Column("request_id", Integer, ForeignKey("share_requests.id")),
    Column("granted_by", String(64), nullable=False),
    Column("granted_at", UTC_TS, nullable=False),
    Column("expires_at", UTC_TS, nullable=False),
    Column("revoked_at", UTC_TS),
    Column("revoked_by", String(64)),
    Column("revoke_reason", Text),
    Index("ix_grants_user", "user_id"),
)

share_requests = Table(
    "share_requests", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("requester_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("dataset", String(64), nullable=False),
    Column("layer", String(16), nullable=False),
    Column("fields", JSON),                                       # requested field names; None: all
    Column("purpose", Text, nullable=False),                      # 用途
    Column("scenario", Text, nullable=False),                     # 应用场景
    Column("legal_basis", Text, nullable=False),                  # 依据
    Column("period_days", Integer, nullable=False),               # 使用期限
    Column("share_type", String(16), nullable=False),             # the contract's 共享属性 when filed
    Column("owner_node", String(16), nullable=False),             # whose steward decides
    Column("status", String(16), nullable=False),                 # see govlake.control.sharing
    Column("created_at", UTC_TS, nullable=False),
    Column("due_at", UTC_TS, nullable=False),                     # reply deadline (catalog/sharing.yaml)
    Column("decided_by", String(64)),
    Column("decided_at", UTC_TS),
    Column("decision_reason", Text),
    Index("ix_share_requests_owner", "owner_node", "status"),
)

objections = Table(
    "objections", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("reporter_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("table_name", String(96), nullable=False),             # layer.table
    Column("dataset", String(64)),                                # the source dataset the record came from
    Column("record_ref", String(128), nullable=False),            # pseudonym or key as shown to the user
    Column("key_digest", String(64)),                             # keyed digest of the record key
    Column("field", String(64)),                                  # the disputed data item's field
    Column("item", String(64)),                                   # catalog/data_items.yaml item, if any
    Column("reason", Text, nullable=False),                       # scrubbed of personal values
    Column("source_node", String(16), nullable=False),            # routed to (authority)
    Column("status", String(16), nullable=False),
    Column("value_digest", String(64)),                           # keyed digest of the value when filed
    Column("created_at", UTC_TS, nullable=False),
    Column("due_at", UTC_TS, nullable=False),
    Column("updated_at", UTC_TS, nullable=False),
    Column("handled_by", String(64)),
    Column("resolution", Text),
    Index("ix_objections_open", "source_node", "status"),
)

audit_log = Table(
    "audit_log", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),  # 1, 2, 3 ... assigned under a lock
    Column("at", UTC_TS, nullable=False),
    Column("user_name", String(64), nullable=False),
    Column("node", String(16)),
    Column("role", String(16)),
    Column("auth", String(16), nullable=False),                   # password / token / session / local-owner
    Column("action", String(32), nullable=False),                 # sql / login / grant / share.approve ...
    Column("outcome", String(16), nullable=False),                # ok / denied / error / ...
    Column("grant_ids", JSON),
    Column("tables", JSON),
    Column("rows", Integer),
    Column("detail", Text),                                       # masked statement or workflow summary
    Column("digest", String(64)),                                 # keyed digest of the full text
    Column("request_id", String(32)),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    UniqueConstraint("hash"),
)
