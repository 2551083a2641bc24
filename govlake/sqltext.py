"""SQL text primitives every engine spells the same way: string literals and quoted identifiers.

Kept apart from govlake.engine.base (which imports pyarrow and delta-rs) so that declaration-time code, such as
the check types the DAG files reach through the suites, can build SQL text without loading an engine.
"""

from __future__ import annotations


def sql_str(value: str) -> str:
    """A single-quoted SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
