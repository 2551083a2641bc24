"""One mechanism for every declaration: each file kind is validated by its JSON Schema and built into its
dataclass by govlake.declarations; a broken file is refused naming the file and the dotted path. Check types
are registered once (govlake/checks.py): the contract schema, the suites and GX all follow the registry."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
import yaml

from govlake.checks import EXPECTATIONS, KEYWORDS, CheckType, NotNull, Operands, check_type
from govlake.declarations import build, schema_path
from govlake.engine.base import Dialect
from govlake.errors import ConfigError
from govlake.registry import load_registry
from tests.conftest import PROJECT

# (file under the project, text to replace, replacement, dotted path the error must name, word in the message)
BROKEN: dict[str, tuple[str, str, str, str, str]] = {
    "contract": ("schemas/datasets/market_entities.yaml", "share: 有条件共享", "share: 部分共享", "catalog.share", "部分共享"),
    "contract_decimal_scale": ("schemas/datasets/market_entities.yaml", "type: decimal, scale: 4,", "type: decimal,",
                               "fields.5", "scale"),
    "gold": ("schemas/gold/population.yaml", "kind: base", "kind: basis", "kind", "basis"),
    "gold_column_key": ("schemas/gold/population.yaml", ", from: [", ", form: [",
                        "columns", "form"),
    "nodes": ("catalog/nodes.yaml", "{code: gaj, name: 市公安局}", "{code: gaj, nmae: 市公安局}", "departments.0", "nmae"),
    "nodes_numeric_code": ("catalog/nodes.yaml", '{code: "440103",', "{code: 440103,", "districts.0.code", "440103"),
    "codes": ("catalog/codes/gender.yaml", '{code: "1", label: 男', '{code: 1, label: 男', "codes.0.code", "1"),
    "duties": ("catalog/duties.yaml", "{id: gaj.household_registration, node: gaj, title:",
               "{id: gaj.household_registration, node: gaj, titel:", "duties.0", "titel"),
    "data_items": ("catalog/data_items.yaml", "    authority: gaj\n    basis: 户籍登记信息以公安机关登记为准（",
                   "    authority: [gaj]\n    basis: 户籍登记信息以公安机关登记为准（", "items.0.authority", "gaj"),
    "indicators": ("catalog/indicators.yaml", "    by_district: false", "    by_district: 否", "indicators.0.by_district", "否"),
}


def _project_copy(tmp_path: Path) -> Path:
    proj = tmp_path / "proj"
    for sub in ("schemas", "catalog"):
        shutil.copytree(PROJECT / sub, proj / sub)
    return proj


def _load_all(proj: Path) -> None:
    """Every declaration of a project: registry (with contracts), gold models and indicators."""
    from govlake.jobs.governance.indicators import load_indicators
    from govlake.models import load_models

    load_registry(proj / "catalog", proj / "schemas")
    load_models(proj / "schemas")
    load_indicators(proj / "catalog")


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_file_of_each_kind_is_refused_naming_file_and_path(tmp_path: Path, case: str) -> None:
    rel, old, new, where, word = BROKEN[case]
    _load_all(_project_copy(tmp_path / "good"))  # an untouched copy loads: what fails below fails by the edit
    proj = _project_copy(tmp_path / "broken")  # (a fresh directory: loaded declarations are cached per path)
    path = proj / rel
    text = path.read_text(encoding="utf-8")
    assert text.count(old) >= 1, f"the case no longer matches {rel}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        _load_all(proj)
    err = info.value
    assert err.where is not None and err.where.startswith(str(path)), err.where
    assert f"→ {where}" in err.where, err.where
    assert word in str(err) and "无效" in err.message  # what is wrong, in Chinese
    assert err.hint  # and what to do


def test_misspelt_keys_get_did_you_mean(tmp_path: Path) -> None:
    proj = _project_copy(tmp_path)
    path = proj / "catalog" / "nodes.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("{code: gaj, name: 市公安局}", "{code: gaj, nmae: 市公安局}"),
                    encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_registry(proj / "catalog", proj / "schemas")
    assert "“name”" in (info.value.hint or "")


def test_a_numeric_code_is_asked_to_be_quoted(tmp_path: Path) -> None:
    """YAML reads 01 as the integer 1: a code list refuses unquoted codes instead of losing the zero."""
    proj = _project_copy(tmp_path)
    path = proj / "catalog" / "codes" / "gender.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace('{code: "1", label: 男', "{code: 1, label: 男"),
                    encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_registry(proj / "catalog", proj / "schemas")
    assert "引号" in (info.value.hint or "")


def test_cross_file_checks_still_apply(tmp_path: Path) -> None:
    """Schema-valid but naming an unknown node: the registry's cross-check names the file."""
    proj = _project_copy(tmp_path)
    path = proj / "catalog" / "duties.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("{id: gaj.household_registration, node: gaj,",
                                                             "{id: gaj.household_registration, node: gaz,"),
                    encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_registry(proj / "catalog", proj / "schemas")
    assert str(path) in (info.value.where or "") and "gaz" in info.value.message


def test_every_registry_kind_has_a_schema_and_the_real_files_build() -> None:
    for kind in ("contract", "gold", "nodes", "codes", "duties", "data_items", "indicators"):
        schema = json.loads(schema_path(kind, PROJECT / "schemas").read_text(encoding="utf-8"))
        assert schema["$schema"].endswith("2020-12/schema") and schema.get("additionalProperties") is False
    reg = load_registry(PROJECT / "catalog", PROJECT / "schemas")
    assert reg.nodes["440100"].short and reg.nodes["440100"].kind == "center"
    assert all(isinstance(c.aliases, tuple) for cl in reg.code_lists.values() for c in cl.codes)
    ent = reg.data_items["legal_entity.name"]
    assert ent.authority is None and ent.authority_for("5144") == "mzj" and ent.authority_for("9144") == "scjgj"


@dataclass(frozen=True)
class _Leaf:
    name: str
    sources: tuple[str, ...] = field(default=(), metadata={"key": "from"})


@dataclass(frozen=True)
class _Tree:
    title: str
    leaves: tuple[_Leaf, ...]
    by_name: dict[str, _Leaf] = field(default_factory=dict)
    limit: float | None = None


def test_build_follows_the_dataclass_hints() -> None:
    t = build(_Tree, {"title": "t", "leaves": [{"name": "a", "from": ["x.y"]}], "by_name": {"b": {"name": "b"}},
                      "limit": 3})
    assert t == _Tree("t", (_Leaf("a", ("x.y",)),), {"b": _Leaf("b")}, 3)
    assert isinstance(t.limit, int)  # scalars as written: an integer bound stays an integer in the suites


# -- check types ----------------------------------------------------------------------------------------------

def test_contract_schema_check_enum_is_the_registered_keywords() -> None:
    schema = json.loads(schema_path("contract", PROJECT / "schemas").read_text(encoding="utf-8"))
    enum = schema["properties"]["fields"]["items"]["properties"]["check"]["enum"]
    assert sorted(enum) == sorted(KEYWORDS), "list the keywords registered in govlake/checks.py in contract.schema.json"


def test_every_type_in_the_suites_is_registered_and_its_kwargs_fit() -> None:
    seen = set()
    for path in sorted((PROJECT / "expectations").glob("*/*.json")):
        for i, e in enumerate(json.loads(path.read_text(encoding="utf-8"))["expectations"]):
            check_type(e["type"]).check_kwargs(e["kwargs"], f"{path} → expectations.{i}")
            seen.add(e["type"])
    assert seen == set(EXPECTATIONS)  # and no registered type is dead code


def test_a_misspelt_parameter_is_refused_naming_file_and_parameter(ctx, tmp_path: Path) -> None:
    from govlake.jobs.quality.suites import build_silver_suite

    exp = tmp_path / "expectations"
    shutil.copytree(PROJECT / "expectations", exp)
    overlay = exp / "silver" / "market_entities.yaml"
    doc = yaml.safe_load(overlay.read_text(encoding="utf-8")) or {}
    doc["expectations"] = list(doc.get("expectations") or []) + [
        {"rule": "registered_capital.cap", "type": "expect_column_values_to_be_between",
         "kwargs": {"column": "registered_capital", "max_valu": 5}}]
    overlay.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        build_silver_suite(ctx.contract("market_entities"), ctx.registry, exp)
    assert str(overlay) in (info.value.where or "") and "max_valu" in str(info.value)
    assert "max_value" in (info.value.hint or "")


def test_a_type_may_spell_its_sql_per_engine() -> None:
    class Other(Dialect):
        name = "other"

    class Overridden(NotNull):  # not registered: a local variant for this test
        def fails_other(self, on: Operands, ck) -> str:
            return f"{on.text(ck.kwargs['column'])} IS NULL /* other */"

    ck = type("Ck", (), {"kwargs": {"column": "a"}})()
    value: Callable[[str, bool], str] = lambda c, typed: c  # noqa: E731
    assert Overridden().sql(Operands(Dialect(), value), ck) == "a IS NULL"
    assert Overridden().sql(Operands(Other(), value), ck) == "a IS NULL /* other */"


def test_unknown_type_is_a_config_error_with_a_suggestion() -> None:
    with pytest.raises(ConfigError) as info:
        check_type("expect_column_values_to_be_valid_cn_rik", "x.yaml")
    assert "expect_column_values_to_be_valid_cn_ric" in (info.value.hint or "")


def test_gx_knows_every_custom_type() -> None:
    pytest.importorskip("great_expectations")
    from great_expectations.expectations.registry import get_expectation_impl

    import govlake.gx as G

    custom = [t for t in EXPECTATIONS.values() if t.gx is not None]
    assert custom and all(isinstance(t, CheckType) for t in custom)
    for t in custom:
        assert get_expectation_impl(t.name) is G.CUSTOM[G.class_name(t.name)]
