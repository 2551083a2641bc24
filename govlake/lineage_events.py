"""OpenLineage run events for every govlake job run (全程留痕).

Each job run emits START, then COMPLETE or FAIL, with its inputs and outputs named by their Delta table
URIs (namespace ``file`` + absolute path for a local lake, ``s3://bucket`` + key for object storage), the
``schema`` and ``columnLineage`` facets (from the declared graph, govlake/lineage_graph.py, that
gold.lineage_edges also holds),
``dataQualityAssertions`` (from the validation record) and ``outputStatistics``.

Transport, in order: ``GOVLAKE_LINEAGE=off`` disables; ``OPENLINEAGE_URL`` (or ``OPENLINEAGE_CONFIG``) uses
the client's own configuration, e.g. HTTP to Marquez; otherwise JSON Lines appended to
``<lake>/_lineage/events.jsonl``. Events carry names and counts only: no value of any row, and error
messages have their digit runs masked before they are sent.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any

from govlake.redaction import scrub
from govlake.tables import LAYERS

PRODUCER = "https://github.com/govlake/govlake"
SUBTYPES = {"IDENTITY": "IDENTITY", "TRANSFORMED": "TRANSFORMATION", "MASKED": "TRANSFORMATION", "AGGREGATED": "AGGREGATION"}
NAMESPACE = "govlake"


@dataclass
class DatasetRef:
    """One table a run reads or writes, and the facets it carries."""

    layer: str
    name: str
    columns: dict[str, list[tuple[str, str, str, str]]] = field(default_factory=dict)  # col -> [(layer, table, col, how)]
    assertions: list[dict] = field(default_factory=list)
    rows: int | None = None
    files: str | None = None  # a delivered file instead of a table


class LineageEmitter:
    def __init__(self, ctx) -> None:  # ctx: govlake.context.Context
        self.ctx = ctx

    @cached_property
    def client(self):
        """The transport ``Settings.lineage`` chose: off, OpenLineage's own configuration (``OPENLINEAGE_URL``
        or ``OPENLINEAGE_CONFIG``, read by its client), or a file in a local lake."""
        transport = self.ctx.settings.lineage
        if transport == "off" or (transport == "file" and not self.ctx.settings.is_local):
            return None  # an object-store lake has nothing local to append to
        try:
            from openlineage.client import OpenLineageClient
            from openlineage.client.transport.file import FileConfig, FileTransport
        except ImportError:  # the lineage extra is not installed
            return None
        if transport == "openlineage":
            return OpenLineageClient()
        path = self.events_path
        path.parent.mkdir(parents=True, exist_ok=True)
        return OpenLineageClient(transport=FileTransport(FileConfig(log_file_path=str(path), append=True)))

    @property
    def events_path(self) -> Path:
        return Path(self.ctx.settings.lake_root) / "_lineage" / "events.jsonl"

    @cached_property
    def edges(self) -> list:
        from govlake.lineage_graph import all_edges  # the contracts and models are parsed only when needed

        return all_edges(self.ctx)

    def columns(self, layer: str, table: str) -> dict[str, list[tuple[str, str, str, str]]]:
        return column_map(self.edges, layer, table)

    def table(self, layer: str, name: str, rows: int | None = None, columns: bool = True) -> DatasetRef:
        """A table reference with its declared column lineage."""
        return DatasetRef(layer, name, columns=self.columns(layer, name) if columns else {}, rows=rows)

    def naming(self, layer: str, name: str) -> tuple[str, str]:
        uri = self.ctx.lake.uri(layer, name)
        if uri.startswith(("s3://", "s3a://")):
            bucket, _, key = uri.split("://", 1)[1].partition("/")
            return f"s3://{bucket}", key
        return "file", uri

    # -- events ------------------------------------------------------------------------------------
    @contextmanager
    def run(self, job: str, inputs: list[DatasetRef], outputs: list[DatasetRef], *, description: str = "",
            engine: str | None = None, parent: dict | None = None) -> Iterator["LineageRun"]:
        """START now; COMPLETE with the facets the body filled in, or FAIL (and re-raise) on an exception."""
        handle = LineageRun(self, job, str(uuid.uuid4()), inputs, outputs, description, engine, parent or env_parent())
        handle.emit("START")
        try:
            yield handle
        except BaseException as exc:
            handle.emit("FAIL", error=exc)
            raise
        if handle.failure is not None:  # the job reported a failure without raising (e.g. a refused file)
            handle.emit("FAIL", error=RuntimeError(handle.failure))
        else:
            handle.emit("COMPLETE")


class LineageRun:
    def __init__(self, emitter: LineageEmitter, job: str, run_id: str, inputs: list[DatasetRef], outputs: list[DatasetRef],
                 description: str, engine: str | None, parent: dict | None) -> None:
        self.emitter = emitter
        self.job = job
        self.run_id = run_id
        self.inputs = inputs
        self.outputs = outputs
        self.description = description
        self.engine = engine
        self.parent = parent
        self.failure: str | None = None

    def fail(self, message: str) -> None:
        self.failure = message

    def output(self, layer: str, name: str) -> DatasetRef:
        for o in self.outputs:
            if (o.layer, o.name) == (layer, name):
                return o
        ref = DatasetRef(layer, name)
        self.outputs.append(ref)
        return ref

    def emit(self, state: str, error: BaseException | None = None) -> dict | None:
        client = self.emitter.client
        if client is None:
            return None
        event = self.build(state, error)
        try:
            client.emit(event)
        except Exception as exc:  # lineage must never break a pipeline run
            import logging

            logging.getLogger("govlake.lineage").warning("OpenLineage 事件发送失败：%s", scrub(str(exc)))
        return event

    def _schema_facet(self, layer: str, name: str):
        from openlineage.client.facet_v2 import schema_dataset

        schema = self.emitter.ctx.lake.arrow_schema(layer, name) if layer in LAYERS else None
        if schema is None:
            return None
        fields = [schema_dataset.SchemaDatasetFacetFields(name=f.name, type=str(f.type)) for f in schema]
        return schema_dataset.SchemaDatasetFacet(fields=fields)

    def build(self, state: str, error: BaseException | None = None):
        from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
        from openlineage.client.facet_v2 import (
            column_lineage_dataset as cl,
            data_quality_assertions_dataset as dq,
            documentation_job,
            error_message_run,
            job_type_job,
            output_statistics_output_dataset as ostats,
            processing_engine_run,
        )

        final = state in ("COMPLETE", "FAIL")
        run_facets: dict[str, Any] = {}
        if self.engine:
            run_facets["processing_engine"] = processing_engine_run.ProcessingEngineRunFacet(
                version=_version(self.engine), name=self.engine, openlineageAdapterVersion=_version("openlineage-python"))
        if error is not None:
            run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=scrub(str(error))[:2000], programmingLanguage="python")
        if self.parent:
            from openlineage.client.facet_v2 import parent_run

            root = self.parent.get("root")
            run_facets["parent"] = parent_run.ParentRunFacet(
                run=parent_run.Run(runId=self.parent["run_id"]),
                job=parent_run.Job(namespace=self.parent.get("namespace", NAMESPACE), name=self.parent["job"]),
                root=parent_run.Root(run=parent_run.RootRun(runId=root["run_id"]),
                                     job=parent_run.RootJob(namespace=root["namespace"], name=root["job"])) if root else None)
        job_facets = {"jobType": job_type_job.JobTypeJobFacet(processingType="BATCH", integration="GOVLAKE", jobType="JOB")}
        if self.description:
            job_facets["documentation"] = documentation_job.DocumentationJobFacet(description=self.description)

        def ds_name(d: DatasetRef) -> tuple[str, str]:
            return ("file", d.files) if d.files else self.emitter.naming(d.layer, d.name)

        inputs = []
        for d in self.inputs:
            ns, name = ds_name(d)
            facets = {}
            if not d.files:
                sf = self._schema_facet(d.layer, d.name)
                if sf is not None:
                    facets["schema"] = sf
            input_facets = {}
            if final and d.assertions:
                input_facets["dataQualityAssertions"] = dq.DataQualityAssertionsDatasetFacet(assertions=[
                    dq.Assertion(assertion=a["assertion"], success=a["success"], column=a.get("column"),
                                 severity=a.get("severity"), name=a.get("name"), description=a.get("description"),
                                 actual=a.get("actual"), expected=a.get("expected"))
                    for a in d.assertions])
            inputs.append(InputDataset(namespace=ns, name=name, facets=facets, inputFacets=input_facets))
        outputs = []
        for d in self.outputs:
            ns, name = ds_name(d)
            facets: dict[str, Any] = {}
            if final:
                sf = self._schema_facet(d.layer, d.name)
                if sf is not None:
                    facets["schema"] = sf
            if d.columns:
                fields = {}
                for col, srcs in d.columns.items():
                    ins = []
                    for layer, table, scol, how in srcs:
                        sns, sname = self.emitter.naming(layer, table) if layer != "file" else ("file", table)
                        ins.append(cl.InputField(namespace=sns, name=sname, field=scol, transformations=[
                            cl.Transformation(type="DIRECT", subtype=SUBTYPES.get(how, "TRANSFORMATION"),
                                              masking=how == "MASKED")]))
                    fields[col] = cl.Fields(inputFields=ins)
                facets["columnLineage"] = cl.ColumnLineageDatasetFacet(fields=fields)
            output_facets = {}
            if final and d.rows is not None:
                output_facets["outputStatistics"] = ostats.OutputStatisticsOutputDatasetFacet(rowCount=int(d.rows))
            outputs.append(OutputDataset(namespace=ns, name=name, facets=facets, outputFacets=output_facets))
        return RunEvent(eventType=getattr(RunState, state), eventTime=datetime.now(timezone.utc).isoformat(),
                        run=Run(runId=self.run_id, facets=run_facets),
                        job=Job(namespace=NAMESPACE, name=self.job, facets=job_facets),
                        inputs=inputs, outputs=outputs, producer=PRODUCER)


def _run_ref(value: str | None) -> dict | None:
    """``namespace/job/run_id`` (the form OpenLineage integrations pass to child jobs) as a dict; None
    unless the run id is a UUID, as the ParentRunFacet requires."""
    if not value or value.count("/") < 2:
        return None
    namespace, job, run_id = value.rsplit("/", 2)
    try:
        uuid.UUID(run_id)
    except ValueError:
        return None
    return {"namespace": namespace, "job": job, "run_id": run_id}


def env_parent() -> dict | None:
    """The parent run handed down by an orchestrator (``OPENLINEAGE_PARENT_ID``, and the root of its run
    tree in ``OPENLINEAGE_ROOT_PARENT_ID``): the Airflow task that runs a job, for instance."""
    parent = _run_ref(os.environ.get("OPENLINEAGE_PARENT_ID"))
    if parent is not None:
        parent["root"] = _run_ref(os.environ.get("OPENLINEAGE_ROOT_PARENT_ID"))
    return parent


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version({"duckdb": "duckdb", "spark": "pyspark"}.get(dist, dist))
    except PackageNotFoundError:
        return "unknown"


def column_map(edges, layer: str, table: str) -> dict[str, list[tuple[str, str, str, str]]]:
    """Output column -> its input columns, from the lineage edges (govlake/lineage_graph.py) of one target table."""
    out: dict[str, list[tuple[str, str, str, str]]] = {}
    target = f"{layer}.{table}"
    for e in edges:
        if e.target == target and e.target_column and e.source_column:
            slayer, stable = e.source.split(".", 1)
            out.setdefault(e.target_column, []).append((slayer, stable, e.source_column, e.transformation))
    return out
