"""Every contract, model and registry is valid, and bad ones are reported with file and dotted path."""

from __future__ import annotations

from pathlib import Path

import pytest

from govlake.contracts import load_contract
from govlake.errors import ConfigError
from govlake.models import build_order, load_models
from govlake.registry import load_registry

PROJECT = Path(__file__).resolve().parents[2]
SCHEMAS = PROJECT / "schemas"


@pytest.fixture(scope="module")
def reg():
    return load_registry(PROJECT / "catalog", SCHEMAS)


def test_node_registry_is_1_plus_11_plus_n(reg) -> None:
    assert [n.code for n in reg.nodes.values() if n.kind == "center"] == ["440100"]
    assert {n.code for n in reg.districts} == {"440103", "440104", "440105", "440106", "440111", "440112",
                                              "440113", "440114", "440115", "440117", "440118"}
    deps = {n.code: n.name for n in reg.departments}
    assert len(deps) >= 20
    for code, name in {"gaj": "市公安局", "scjgj": "市市场监督管理局", "lsj": "市来穗人员服务管理局", "zsj": "市政务服务数据管理局",
                       "rsj": "市人力资源和社会保障局", "wjw": "市卫生健康委员会", "jyj": "市教育局", "jtj": "市交通运输局",
                       "sthjj": "市生态环境局", "swj": "市水务局", "gxj": "市工业和信息化局", "mzj": "市民政局"}.items():
        assert deps[code] == name


def test_contracts_span_the_base_and_theme_catalogues(reg) -> None:
    cs = reg.contracts
    assert len(cs) >= 15
    assert {c.catalog.base for c in cs.values() if c.catalog.base} >= {"人口", "法人", "电子证照", "社会信用"}
    assert any(c.catalog.theme for c in cs.values())
    assert any("districts" in c.delivered_by for c in cs.values())  # district nodes deliver too
    codes = [c.catalog.code for c in cs.values()]
    assert len(codes) == len(set(codes))
    for c in cs.values():
        cat = c.catalog
        assert all([cat.category, cat.code, c.owner, cat.summary, cat.format, c.fields, cat.share, cat.open, cat.update_cycle])
        for f in c.fields:
            assert f.pii in ("none", "personal", "sensitive") and 1 <= f.grade <= 4


@pytest.mark.parametrize("dataset,node,key,headers", [
    ("market_entities", "scjgj", ("uscc",), {"统一社会信用代码": "uscc", "企业名称": "entity_name", "市场主体类型": "entity_type",
      "法定代表人": "legal_rep_name", "法定代表人证件号码": "legal_rep_id_number", "注册资本（万元）": "registered_capital",
      "成立日期": "establish_date", "行政区划代码": "district_code", "登记状态": "status", "行业代码": "industry_code"}),
    ("hukou_population", "gaj", ("id_number",), {"公民身份号码": "id_number", "姓名": "name", "性别": "gender",
      "出生日期": "birth_date", "户籍地行政区划": "district_code", "住址": "address", "登记日期": "registered_on"}),
    ("migrant_population", "lsj", ("id_number",), {"公民身份号码": "id_number", "姓名": "name", "性别": "gender",
      "出生日期": "birth_date", "居住地址": "residence_address", "居住证有效期止": "permit_valid_to"}),
])
def test_required_contracts_and_their_chinese_headers(reg, dataset, node, key, headers) -> None:
    c = reg.contracts[dataset]
    assert c.owner == node and c.key == key
    hm = c.header_map()
    from govlake.contracts import normalize_header

    for header, field in headers.items():
        assert hm[normalize_header(header)] == field


def _bad_contract(tmp_path: Path, text: str) -> Path:
    (tmp_path / "_meta").mkdir()
    (tmp_path / "_meta" / "contract.schema.json").write_text((SCHEMAS / "_meta" / "contract.schema.json").read_text())
    p = tmp_path / "broken.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def test_bad_contract_names_file_and_dotted_path(tmp_path: Path) -> None:
    good = (SCHEMAS / "datasets" / "market_entities.yaml").read_text(encoding="utf-8")
    text = good.replace("dataset: market_entities", "dataset: broken").replace("type: date", "type: datum", 1)
    p = _bad_contract(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_contract(p, tmp_path)
    assert "broken.yaml" in str(err.value) and "fields.6.type" in str(err.value)


def test_misspelt_key_gets_did_you_mean(tmp_path: Path) -> None:
    good = (SCHEMAS / "datasets" / "market_entities.yaml").read_text(encoding="utf-8")
    text = good.replace("dataset: market_entities", "dataset: broken").replace("  share: 有条件共享", "  shares: 有条件共享")
    with pytest.raises(ConfigError) as err:
        load_contract(_bad_contract(tmp_path, text), tmp_path)
    assert "share" in str(err.value)


def test_gold_models_load_in_dependency_order() -> None:
    order = [m.table for m in build_order(load_models(SCHEMAS))]
    assert order.index("population") < order.index("district_profile")
    assert order.index("legal_entities") < order.index("district_profile")
    for m in load_models(SCHEMAS).values():
        assert "silver__" in m.compiled_sql("spark") or "gold__" in m.compiled_sql("spark")
