"""Table and column descriptions for analysts, from the declarations (not written twice).

- silver and quarantine columns: the contract's field titles and descriptions (a pseudonym or masked value
  says so), and the columns the layer adds (govlake/tables.py);
- gold model columns: the ``description`` of each column in schemas/gold/*.yaml;
- governance gold and meta tables: their declarations in govlake/tables.py;
- table descriptions: the Delta table's own description, set by the job that writes it from its
  declaration (the declared one for a table written without it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from govlake.models import load_models
from govlake.tables import DATASET_LAYERS, declared

if TYPE_CHECKING:
    from govlake.context import Context


def column_descriptions(ctx: "Context", layer: str, name: str) -> dict[str, str]:
    if layer in ("silver", "quarantine") and name in ctx.registry.contracts:
        out: dict[str, str] = {}
        for f in ctx.contract(name).fields:
            text = f.title + (f"：{f.description}" if f.description else "")
            out[f.name] = text
            out[f"{f.name}_pid"] = f"{f.title}的假名（HMAC-SHA256，用于关联，不可还原）"
            out[f"{f.name}_masked"] = f"{f.title}（脱敏）"
        out.update(DATASET_LAYERS[layer].descriptions)
        return out
    if layer == "gold":
        models = load_models(ctx.settings.schemas_dir)
        if name in models:
            return {c.name: c.description for c in models[name].columns}
    table = declared(layer, name)
    return table.descriptions if table is not None else {}


def table_description(ctx: "Context", layer: str, name: str) -> str:
    """The Delta table's description, else the declared one (the meta tables' writers set none)."""
    dt = ctx.lake.table(layer, name)
    written = (dt.metadata().description or "") if dt is not None else ""
    table = declared(layer, name)
    return written or (table.description if table is not None else "")
