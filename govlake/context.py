"""The job context: settings, registries and the lake, resolved once and handed to every job.

This is the one place where the environment (local or production) is chosen; jobs receive a Context and
an Engine, the way Dagster resources are plugged into assets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from govlake.contracts import Contract, get_contract
from govlake.filemodes import restrict_new_files
from govlake.lake import Lake
from govlake.project import Settings
from govlake.registry import Registry, load_registry


@dataclass
class Context:
    settings: Settings

    def __post_init__(self) -> None:
        # Every entry point (CLI, Airflow task, dashboard) builds a Context before touching the lake.
        restrict_new_files()

    @classmethod
    def from_env(cls, lake: str | None = None, *, deployed: bool = False) -> "Context":
        """The Context of this deployment (:meth:`Settings.from_env`; ``deployed`` for Airflow processes)."""
        return cls(Settings.from_env(lake, deployed=deployed))

    @cached_property
    def registry(self) -> Registry:
        return load_registry(self.settings.catalog_dir, self.settings.schemas_dir)

    @cached_property
    def lake(self) -> Lake:
        return Lake(self.settings)

    @cached_property
    def lineage(self):  # -> govlake.lineage_events.LineageEmitter
        from govlake.lineage_events import LineageEmitter

        return LineageEmitter(self)

    def contract(self, dataset: str) -> Contract:
        self.registry  # cross-checks contracts against the registries first
        return get_contract(self.settings.schemas_dir, dataset)

    def engine(self, kind: str | None = None):  # -> Engine (lazy import keeps the CLI fast)
        """An engine of ``kind``, by default the deployment's (``Settings.engine_kind``, GOVLAKE_ENGINE)."""
        from govlake.engine import make_engine

        eng = make_engine(self.settings, kind or self.settings.engine_kind)
        eng.lake = self.lake
        return eng

    def engine_on_demand(self, kind: str | None = None) -> "EngineOnDemand":
        """:meth:`engine`, opened when a job first uses it (see :class:`EngineOnDemand`)."""
        return EngineOnDemand(lambda: self.engine(kind))


class EngineOnDemand:
    """An Engine that is opened by the first job that uses it, and closed (if it was) with this object.

    ``govlake run`` hands one to the plan: most steps of a rerun find nothing to do before they touch the
    engine, so a run with nothing new never starts DuckDB, let alone a Spark session; a run with work opens it
    once, for the first step that has some. Attribute access is forwarded to the opened engine."""

    def __init__(self, open_engine: Callable[[], Any]) -> None:
        self._open_engine = open_engine
        self._engine: Any = None

    @property
    def opened(self) -> bool:
        return self._engine is not None

    def __getattr__(self, name: str) -> Any:  # only for names this object lacks: the engine's API
        state = self.__dict__
        if name.startswith("__") or "_open_engine" not in state:  # protocol probes (copy, pickle) open nothing
            raise AttributeError(name)
        if state["_engine"] is None:
            state["_engine"] = state["_open_engine"]()
        return getattr(state["_engine"], name)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()

    def __enter__(self) -> "EngineOnDemand":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
