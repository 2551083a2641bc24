"""Typed outcomes of the pipeline's steps, as dbt types its ``NodeStatus`` and ``RunStatus``.

Each is a ``StrEnum``: a member *is* its string, so it compares equal to the literal, serializes to JSON
(Airflow XCom, lineage facets) and to Arrow/Delta as the plain value. What meta.ingest_batches and
meta.conform_batches store is therefore unchanged; what changes is that a misspelt status is an
AttributeError where it is written, not a silent mismatch where it is read.

Library-level (not in govlake.jobs) because the consumers (CLI, dashboard, reports) read them too. How an
Airflow task or a ``govlake run`` step ended is the plan's ``govlake.jobs.plan.StepStatus``.
"""

from __future__ import annotations

from enum import StrEnum


class IngestStatus(StrEnum):
    """One delivered file (``IngestResult.status``, ``meta.ingest_batches.status``)."""

    INGESTED = "ingested"  # landed whole in bronze
    DUPLICATE = "duplicate"  # the same content was ingested before: nothing written
    REFUSED = "refused"  # refused as a whole, with a reason; nothing of it written


class BatchStatus(StrEnum):
    """One conformed batch (``meta.conform_batches.status``)."""

    PUBLISHED = "published"  # its passing rows are in silver
    HELD = "held"  # a fatal rule failed: not published until a steward releases it


class GoldStatus(StrEnum):
    """One gold table or governance table in a run (``GoldResult.status``)."""

    BUILT = "built"  # rebuilt and published
    UNCHANGED = "unchanged"  # its sources did not change since the last build: nothing written
    WAITING = "waiting"  # a source has no data yet
    BLOCKED = "blocked"  # the new version failed its gold suite; the previous version stays


__all__ = ["BatchStatus", "GoldStatus", "IngestStatus"]
