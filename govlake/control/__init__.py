"""The control plane: who the users are, what they may read, and what they did.

The lake holds data; this package holds the city service's state beside it, in a relational database
(SQLite embedded by default, PostgreSQL by URL in production, both through SQLAlchemy Core):

* ``schema``     the tables (users, tokens, web sessions, grants, sharing requests, objections, audit log)
* ``db``         the engine for a deployment's URL, created once per process
* ``principal``  the authenticated identity a request carries, and its grants
* ``identities`` users, password and token authentication, lockout (``govlake users``)
* ``audit``      the tamper-evident audit log (HMAC hash chain, ``govlake audit verify``)
* ``policy``     grants -> what a principal may see of each table (layers, columns, masks, row scope)
* ``sharing``    the 共享申请 workflow of 《政务数据共享条例》 with deadlines from ``catalog/sharing.yaml``
* ``objections`` 数据异议 (校核纠错) routed to the authoritative source node

Every entry point (``govlake sql``, the PostgreSQL-wire endpoint, the dashboard, exports) resolves a
``Principal`` first and hands it to the same policy, so no surface can grant more than another.
"""
