"""Airflow DAGs of ingestion: one per delivering node (1+11+N), from catalog/nodes.yaml and the contracts
(the plan's ``ingest`` stage, built by dags/govlake_factory.py).

``govlake_ingest_<node>``: discover the files in ``<landing>/<node>/<dataset>/`` → ingest them, one mapped
task per dataset folder (each file lands whole in ``bronze.<dataset>`` or is refused with a reason) →
summarize. An ingest task that wrote to bronze emits an event for that ``bronze.<dataset>`` Asset through
the node's AssetAlias (the datasets are only known at run time), which schedules ``govlake_silver``.
"""

from __future__ import annotations

import os
import sys

if os.path.dirname(os.path.abspath(__file__)) not in sys.path:  # bundle parsing adds the DAG folder, a plain DagBag not
    sys.path.append(os.path.dirname(os.path.abspath(__file__)))

from airflow.sdk import get_parsing_context

from govlake_common import jobs, layout
from govlake_factory import ingest_dag

SCHEDULE = jobs.settings().ingest_schedule  # GOVLAKE_INGEST_SCHEDULE: cron or preset; none = trigger only


def build(node: str, datasets: tuple[str, ...]):
    lay = layout()
    title = lay.node_titles[node]
    alias = f"govlake-bronze-{node}"
    return ingest_dag(
        node,
        schedule=SCHEDULE,
        description=f"{title}（{node}）报送文件导入原始层 bronze",
        tags=["bronze", lay.node_kinds[node], f"node:{node}"],
        doc_md=f"""
### 导入原始层 · {title}（`{node}`）

Ingests what node `{node}` delivered to `{lay.landing}/{node}/<dataset>/` into bronze. Datasets this node
delivers: {", ".join(f"`{d}`" for d in datasets)}.

1. **discover** lists every file per dataset folder (hidden files and unfinished uploads are left alone).
2. **ingest** (mapped, one instance per dataset folder) lands each file whole in `bronze.<dataset>` or
   refuses it with a reason recorded in `meta.ingest_batches`. Re-delivered content is a no-op; content
   refused before is not tried again unless the run's param `retry_refused` is true.
3. **summarize** lists refused files as warnings (the task still succeeds unless `GOVLAKE_STRICT=1`).

A dataset with newly ingested batches emits an event for its `bronze.<dataset>` Asset (alias `{alias}`),
which schedules `govlake_silver`.
""",
    )


_only = get_parsing_context().dag_id  # a worker running one task needs only its own DAG
for _node, _datasets in layout().deliveries.items():
    if _only is None or _only == f"govlake_ingest_{_node}":
        globals()[f"govlake_ingest_{_node}"] = build(_node, _datasets)
