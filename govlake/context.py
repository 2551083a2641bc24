"""The job context: settings, registries and the lake, resolved once and handed to every job.

This is the one place where the environment (local or production) is chosen; jobs receive a Context and
an Engine, the way Dagster resources are plugged into assets.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

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
