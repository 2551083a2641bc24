"""``govlake generate``: real files on disk, read back with the project's own readers.

The central check re-detects every row-level defect from the delivered values alone and compares the
counts with the manifest, file by file.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import unicodedata
from collections import Counter
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from stdnum.cn import ric, uscc

from govlake.contracts import Contract
from govlake.errors import DeliveryRefused
from govlake.identifiers import ric_check_char, uscc_is_valid
from govlake.devkit.generate import DEFECT_RATES, ROW_KINDS, Manifest, generate, place_repeats
from govlake.jobs.ingest.readers import open_delivery
from govlake.registry import Registry, load_registry

PROJECT = Path(__file__).resolve().parents[2]
REF = date(2026, 11, 20)
FULLWIDTH = re.compile("[０-９Ａ-Ｚａ-ｚ]")
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}( \d{2}:\d{2}:\d{2})?$")
EXCEL_FLOAT = re.compile(r"^\d(\.\d+)?E\+\d+$")
FILE_KINDS = {"schema_drift", "refused_file"}


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry(PROJECT / "catalog", PROJECT / "schemas")


@pytest.fixture(scope="module")
def run(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Manifest]:
    out = tmp_path_factory.mktemp("landing")
    seen: list[tuple[str, int]] = []
    manifest = generate(registry, out, rows=10_000, seed=7, progress=lambda d, n: seen.append((d, n)))
    manifest.progress = seen  # type: ignore[attr-defined]
    return out, manifest


def norm(v: str) -> str:
    return unicodedata.normalize("NFKC", v).strip().upper()


def _date_ok(s: str) -> date | None:
    try:
        return date(int(s[0:4]), int(s[5:7]) if "-" in s[:8] else int(s[4:6]), int(s[8:10]) if "-" in s[:8] else int(s[6:8]))
    except ValueError:
        return None


def read_rows(path: Path, contract: Contract) -> tuple[list[dict], object]:
    info, stream = open_delivery(path, contract)
    rows = [r for b in stream for r in b.to_pylist()]
    return rows, info


def detect(contract: Contract, registry: Registry, rows: list[dict]) -> Counter:
    """Row-level defect kinds found in delivered values (one kind per row, as the generator promises)."""
    out: Counter = Counter()
    for r in rows:
        if r["_raw"] is not None:
            out["ragged_row"] += 1
            continue
        kinds = set()
        for f in contract.fields:
            v = r[f.name]
            if v is None or v == "":
                if f.required:
                    kinds.add("missing_required")
                continue
            if v != v.strip():
                kinds.add("whitespace")
            if FULLWIDTH.search(v):
                kinds.add("fullwidth_digits")
            s = norm(v)
            if f.check == "cn_ric":
                if EXCEL_FLOAT.match(s):
                    kinds.add("excel_float_id")
                elif len(s) == 18 and s[:17].isdigit():
                    date_ok = _date_ok(s[6:14]) is not None
                    check_ok = ric_check_char(s[:17]) == s[17]
                    if date_ok and not check_ok:
                        kinds.add("bad_check_char")
                    if check_ok and not date_ok:
                        kinds.add("impossible_date")
            if f.check == "cn_uscc" and not uscc_is_valid(s):
                kinds.add("bad_check_char")
            if "district_code" in f.standardize and not s.isdigit():
                kinds.add("district_name")
            if f.type in ("date", "timestamp"):
                if not ISO.match(s):
                    kinds.add("mixed_date_format")
                else:
                    d = _date_ok(s[:10])
                    if d is None:
                        kinds.add("impossible_date")
                    elif (f.not_future and d > REF) or (f.min_date and d < date.fromisoformat(f.min_date)):
                        kinds.add("out_of_range")
            if f.type in ("integer", "decimal"):
                x = float(s)
                if (f.min is not None and x < f.min) or (f.max is not None and x > f.max):
                    kinds.add("out_of_range")
        for k in kinds:
            out[k] += 1
    return out


# -- the manifest and the layout ----------------------------------------------------------------------------

def test_manifest_covers_every_dataset_and_node(run, registry: Registry) -> None:
    out, m = run
    assert m.total_rows == 10_000
    assert (out / "manifest.json").is_file()
    loaded = Manifest.load(out / "manifest.json")
    assert loaded.deliveries == m.deliveries and loaded.total_rows == m.total_rows
    doc = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert doc["totals"]["rows"] == 10_000 and doc["totals"]["files"] == len(m.deliveries)
    rows_by_item = Counter()
    for d in m.deliveries:
        rows_by_item[(d.dataset, d.node)] += d.rows
        assert (out / d.path).is_file()
        ext = d.path.rsplit(".", 1)[1]
        seq = f"{d.sequence}" if d.parts == 1 else f"{d.sequence}-{d.part:02d}"
        assert d.path == f"{d.node}/{d.dataset}/{d.dataset}__{d.node}__{d.delivered_on:%Y%m%d}__{seq}.{ext}"
        assert d.delivered_on <= REF
        assert d.format in ("csv", "xlsx", "jsonl", "parquet")
    for name, c in registry.contracts.items():
        for node in registry.deliverers(c):
            assert rows_by_item[(name, node)] >= 3, (name, node)
    # people and entity registers are the big ones
    by_ds = Counter()
    for d in m.deliveries:
        by_ds[d.dataset] += d.rows
    assert by_ds["hukou_population"] > by_ds["hospital_emr_monthly"] * 5
    assert {d.format for d in m.deliveries} == {"csv", "xlsx", "jsonl", "parquet"}
    assert {d.encoding for d in m.deliveries if d.format == "csv"} >= {"utf-8", "gb18030"}
    assert any(d.bom for d in m.deliveries)
    assert sum(1 for d in m.deliveries if d.expect == "refuse") == 1
    assert any(d.late for d in m.deliveries) and not any(d.late for d in m.deliveries if d.sequence == 1)
    assert any(d.sequence >= 2 and d.redelivered > 0 for d in m.deliveries)
    seqs: dict[tuple[str, str], list[int]] = {}
    for d in m.deliveries:
        seqs.setdefault((d.dataset, d.node), []).append(d.sequence)
    assert all(sorted(set(s))[0] == 1 and sorted(set(s)) == list(range(1, max(s) + 1)) for s in seqs.values())
    # progress reports advance to the total
    done = [n for _, n in m.progress]  # type: ignore[attr-defined]
    assert done == sorted(done) and done[-1] == 10_000


def test_defect_counts_match_the_files(run, registry: Registry) -> None:
    out, m = run
    totals = Counter()
    for d in m.deliveries:
        contract = registry.contracts[d.dataset]
        totals.update(d.defects)
        if d.expect == "refuse":
            with pytest.raises(DeliveryRefused):
                read_rows(out / d.path, contract)
            assert d.defects == {"refused_file": d.rows}
            continue
        rows, info = read_rows(out / d.path, contract)
        assert len(rows) == d.rows, d.path
        assert info.header.headers == d.columns
        expected = {k: v for k, v in d.defects.items() if k not in FILE_KINDS}
        assert dict(detect(contract, registry, rows)) == expected, d.path
        if d.drift:
            assert d.defects["schema_drift"] == d.rows
    for kind in ("bad_check_char", "impossible_date", "mixed_date_format", "fullwidth_digits", "district_name",
                 "missing_required", "out_of_range", "whitespace", "schema_drift", "refused_file"):
        assert totals[kind] > 0, kind
    # rates are roughly what is documented
    rows = m.total_rows
    assert 0.04 < totals["mixed_date_format"] / rows < 0.12
    assert 0.02 < totals["district_name"] / rows < 0.08


def test_clean_ids_validate_with_stdnum(run, registry: Registry) -> None:
    out, m = run
    checked = 0
    for d in m.deliveries:
        if d.expect == "refuse" or d.defects.get("excel_float_id"):
            continue
        contract = registry.contracts[d.dataset]
        rows, _ = read_rows(out / d.path, contract)
        bad_rows = d.defects.get("bad_check_char", 0) + d.defects.get("impossible_date", 0)
        invalid = 0
        for r in rows:
            for f in contract.fields:
                v = r.get(f.name)
                if f.check in ("cn_ric", "cn_uscc") and v:
                    ok = (ric if f.check == "cn_ric" else uscc).is_valid(norm(v))
                    invalid += not ok
                    checked += 1
        assert invalid <= bad_rows, d.path
    assert checked > 5_000


# -- formats ----------------------------------------------------------------------------------------------

def test_each_format_reads_back(run, registry: Registry) -> None:
    out, m = run
    kinds = set()
    for d in m.deliveries:
        if d.expect == "refuse":
            continue
        path = out / d.path
        if d.format == "csv":
            raw = path.read_bytes()
            assert raw.startswith(b"\xef\xbb\xbf") == d.bom
            text = raw.decode("utf-8-sig" if d.encoding == "utf-8" else "gb18030")
            if d.encoding == "gb18030":
                with pytest.raises(UnicodeDecodeError):
                    raw.decode("utf-8")
            header = next(csv.reader(io.StringIO(text)))
            assert header == d.columns
            kinds.add(f"csv-{d.encoding}")
        elif d.format == "xlsx":
            from openpyxl import load_workbook

            wb = load_workbook(path, read_only=True)
            lines = [[c for c in row if c is not None] for row in wb.worksheets[0].iter_rows(values_only=True)]
            wb.close()
            hdr = next(i for i, row in enumerate(lines) if row and row == d.columns)
            assert 1 <= hdr <= 3 and len(lines[0]) == 1  # title rows
            footer = [row[0] for row in lines[hdr + 1 + d.rows:] if row]
            assert footer[0] == f"合计：{d.rows}条" and any(str(x).startswith("制表人") for x in footer)
            kinds.add("xlsx")
        elif d.format == "jsonl":
            recs = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
            assert len(recs) == d.rows and list(recs[0]) == d.columns
            kinds.add("jsonl")
        else:
            t = pq.read_table(path)
            assert t.num_rows == d.rows and t.column_names == d.columns
            kinds.add("parquet")
    assert kinds >= {"csv-utf-8", "csv-gb18030", "xlsx", "jsonl", "parquet"}


def test_xlsx_ids_as_excel_numbers(registry: Registry, tmp_path: Path) -> None:
    m = generate(registry, tmp_path, rows=4_000, seed=3, datasets=["hukou_population", "migrant_population"],
                 formats=["xlsx"])
    floats = [d for d in m.deliveries if d.defects.get("excel_float_id")]
    assert floats, "some XLSX file should carry ID numbers saved as Excel numbers"
    for d in floats:
        rows, _ = read_rows(tmp_path / d.path, registry.contracts[d.dataset])
        mangled = [r["id_number"] for r in rows if r["id_number"] and "e+" in r["id_number"]]
        assert len(mangled) == d.defects["excel_float_id"]
        assert all(re.fullmatch(r"\d\.\d+e\+17", v) for v in mangled)


def test_xlsx_falls_back_to_csv_above_50k_rows(registry: Registry, tmp_path: Path) -> None:
    m = generate(registry, tmp_path, rows=60_000, datasets=["schools"], formats=["xlsx"], defects=False)
    big = [d for d in m.deliveries if d.rows > 50_000]
    assert big and all(d.format == "csv" and d.encoding == "gb18030" for d in big)
    assert all(d.format == "xlsx" for d in m.deliveries if d.rows <= 50_000)


# -- determinism, scale, switches --------------------------------------------------------------------------

def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes(registry: Registry, tmp_path: Path) -> None:
    args = dict(rows=3_000, datasets=["hukou_population", "market_entities", "grid_events", "air_quality_daily"])
    generate(registry, tmp_path / "a", seed=11, **args)
    generate(registry, tmp_path / "b", seed=11, **args)
    generate(registry, tmp_path / "c", seed=12, **args)
    a, b, c = _tree(tmp_path / "a"), _tree(tmp_path / "b"), _tree(tmp_path / "c")
    assert any(k.endswith(".xlsx") for k in a) and any(k.endswith(".parquet") for k in a)
    assert a == b
    assert a != c


def test_scale_knob(registry: Registry, tmp_path: Path) -> None:
    ds = ["hukou_population", "service_cases", "schools"]
    small = generate(registry, tmp_path / "s", rows=2_000, datasets=ds, formats=["csv"])
    large = generate(registry, tmp_path / "l", rows=8_000, datasets=ds, formats=["csv"])
    assert small.total_rows == 2_000 and large.total_rows == 8_000
    for name in ds:
        s = sum(d.rows for d in small.deliveries if d.dataset == name)
        g = sum(d.rows for d in large.deliveries if d.dataset == name)
        assert g > s
    assert {d.format for d in large.deliveries} == {"csv"}
    assert all(d.rows >= 3 for d in small.deliveries)


def test_no_defects_means_clean(registry: Registry, tmp_path: Path) -> None:
    m = generate(registry, tmp_path, rows=12_000, seed=5, defects=False,
                 datasets=["hukou_population", "market_entities", "credit_records", "hotline_tickets"])
    assert all(d.defects == {} and d.expect == "ingest" and d.repeats == 0 and not d.drift for d in m.deliveries)
    for d in m.deliveries:
        c = registry.contracts[d.dataset]
        rows, _ = read_rows(tmp_path / d.path, c)
        assert not detect(c, registry, rows), d.path
        keys = [tuple(r[k] for k in c.key) for r in rows]
        assert len(set(keys)) == len(keys)
        assert [h for h in d.columns] == [f.title for f in c.fields]


def test_nodes_filter_and_unknown_names(registry: Registry, tmp_path: Path) -> None:
    m = generate(registry, tmp_path, rows=2_000, nodes=["440106", "gaj"])
    assert {d.node for d in m.deliveries} == {"440106", "gaj"}
    from govlake.errors import RegistryError

    with pytest.raises(RegistryError):
        generate(registry, tmp_path, rows=100, datasets=["hukou_populaton"])


def test_place_repeats() -> None:
    rng = np.random.default_rng(0)
    base = np.arange(100, 1100)
    out, rep = place_repeats(base, 20, rng)
    assert len(out) == 1020 and rep.sum() == 20 and not rep[0]
    assert list(out[~rep]) == list(base)
    for i in np.flatnonzero(rep):
        assert out[i] in set(out[:i][~rep[:i]])


# -- realism ---------------------------------------------------------------------------------------------

def _values(out: Path, m: Manifest, registry: Registry, dataset: str) -> list[dict]:
    rows = []
    for d in m.deliveries:
        if d.dataset == dataset and d.expect == "ingest":
            rows += read_rows(out / d.path, registry.contracts[dataset])[0]
    return rows


def test_repeats_and_updates(run, registry: Registry) -> None:
    out, m = run
    for d in m.deliveries:
        if d.dataset != "hukou_population" or d.expect == "refuse":
            continue
        rows, _ = read_rows(out / d.path, registry.contracts[d.dataset])
        keys = [norm(r["id_number"]) for r in rows if r["id_number"]]
        slack = sum(d.defects.get(k, 0) for k in ("bad_check_char", "impossible_date", "missing_required",
                                                    "excel_float_id"))
        assert abs((len(rows) - len(set(keys))) - d.repeats) <= slack + 1, d.path
    first = {norm(r["id_number"]) for d in m.deliveries if d.dataset == "hukou_population" and d.sequence == 1
             for r in read_rows(out / d.path, registry.contracts[d.dataset])[0] if r["id_number"]}
    later = [d for d in m.deliveries if d.dataset == "hukou_population" and d.sequence >= 2 and d.expect == "ingest"]
    assert later
    for d in later:
        keys = {norm(r["id_number"]) for r in read_rows(out / d.path, registry.contracts[d.dataset])[0] if r["id_number"]}
        assert len(keys & first) >= d.redelivered * 0.8


def test_people_overlap_with_conflicts(run, registry: Registry) -> None:
    out, m = run
    gender = registry.code_list("gender").lookup()

    def people(ds: str) -> dict[str, dict]:
        return {norm(r["id_number"]): r for r in _values(out, m, registry, ds)
                if r["id_number"] and ric.is_valid(norm(r["id_number"]))}

    hukou, migrant = people("hukou_population"), people("migrant_population")
    both = set(hukou) & set(migrant)
    assert len(both) > 0.03 * len(migrant)
    conflicts = 0
    for pid in both:
        h, g = hukou[pid], migrant[pid]
        same_gender = gender.get(norm(h["gender"] or ""), None) == gender.get(norm(g["gender"] or ""), None)
        conflicts += (h["name"] or "").strip() != (g["name"] or "").strip() or not same_gender
    assert conflicts > 0
    # ID numbers carry the birth date and the sex of the person
    for pid, r in list(hukou.items())[:500]:
        b = norm(r["birth_date"] or "")
        if ISO.match(b) and _date_ok(b) and date(1900, 1, 1) <= _date_ok(b) <= REF:
            assert b.replace("-", "") == pid[6:14]
        g = gender.get(norm(r["gender"] or ""))
        if g in ("1", "2"):
            assert int(pid[16]) % 2 == (1 if g == "1" else 0)


def test_entities_are_referenced_consistently(run, registry: Registry) -> None:
    out, m = run

    def codes(ds: str, field: str) -> set[str]:
        return {norm(r[field]) for r in _values(out, m, registry, ds) if r[field] and uscc_is_valid(norm(r[field]))}

    market, social = codes("market_entities", "uscc"), codes("social_organizations", "uscc")
    assert all(c[0] == "9" for c in market) and all(c[0] == "5" for c in social)
    credit = codes("credit_records", "uscc")
    assert len(credit & (market | social)) >= 0.95 * len(credit)
    elderly = codes("elderly_care_institutions", "institution_code")
    assert len(elderly & social) >= 0.95 * len(elderly)
    # entity type agrees with the USCC's 2nd character
    et = registry.code_list("entity_type").lookup()
    for r in _values(out, m, registry, "market_entities")[:2_000]:
        u, t = norm(r["uscc"] or ""), et.get(norm(r["entity_type"] or ""))
        if uscc_is_valid(u) and t:
            assert (u[1] == "2") == (t == "9100")


def test_values_follow_the_contract(run, registry: Registry) -> None:
    out, m = run
    for name, c in registry.contracts.items():
        rows = _values(out, m, registry, name)
        assert rows, name
        for f in c.fields:
            vals = [norm(r[f.name]) for r in rows if r[f.name] and r[f.name] == r[f.name].strip()
                    and not FULLWIDTH.search(r[f.name])]
            if f.codes:
                lookup = registry.code_list(f.codes).lookup()
                assert all(v in {k.upper() for k in lookup} for v in vals), (name, f.name)
            if f.pattern and f.type == "string":
                assert all(re.fullmatch(f.pattern, v) for v in vals), (name, f.name)
            if f.check == "phone":
                assert all(re.fullmatch(r"1[3-9]\d{9}|0\d{2,3}-?\d{7,8}", v) for v in vals)
            if f.check == "gz_district":
                allowed = {n.code for n in registry.districts}
                assert sum(v in allowed for v in vals) >= 0.85 * len(vals), (name, f.name)
    # district nodes deliver their own district's events, with keys unique across districts
    events = {}
    for d in m.deliveries:
        if d.dataset == "grid_events" and d.expect == "ingest":
            for r in read_rows(out / d.path, registry.contracts[d.dataset])[0]:
                if r["district_code"] and norm(r["district_code"]).isdigit():
                    assert norm(r["district_code"]) == d.node
                if r["event_id"]:
                    events.setdefault(norm(r["event_id"]), set()).add(d.node)
    assert all(len(nodes) == 1 for nodes in events.values())


def test_generic_over_new_contracts(registry: Registry, tmp_path: Path) -> None:
    """A contract the generator has never seen needs no generator change."""
    schemas = tmp_path / "schemas"
    shutil.copytree(PROJECT / "schemas", schemas)
    (schemas / "datasets" / "community_stats.yaml").write_text("""\
dataset: community_stats
version: 1
title: 社区人口月度统计
owner: tjj
delivered_by: [districts]
catalog: {category: 主题信息资源/城市运行, code: C09-01-01-0001, summary: 各区各社区人口的月度统计数据（测试用）。,
          format: 电子表格, share: 无条件共享, open: 无条件开放, update_cycle: 每月, published_on: "2024-01-01"}
key: [district_code, stat_month, community_code]
fields:
  - {name: district_code, title: 所在区, type: string, required: true, standardize: [trim, halfwidth, district_code], check: gz_district}
  - {name: stat_month, title: 统计月份, type: date, required: true, min_date: "2020-01-01", not_future: true, standardize: [trim, halfwidth]}
  - {name: community_code, title: 社区代码, type: string, required: true, pattern: "^4401[0-9]{8}$", standardize: [trim, halfwidth]}
  - {name: community_name, title: 社区名称, type: string, standardize: [trim]}
  - {name: residents, title: 常住人口, type: integer, min: 0, max: 100000, standardize: [trim, halfwidth]}
  - {name: elderly_share, title: 老年人口占比, type: decimal, scale: 2, min: 0, max: 100, standardize: [trim, halfwidth]}
  - {name: has_clinic, title: 是否有卫生站, type: boolean, standardize: [trim]}
  - {name: contact_phone, title: 联系电话, type: string, check: phone, standardize: [trim, halfwidth]}
  - {name: survey_year, title: 调查年度, type: integer, min: 2015, max: 2026}
""", encoding="utf-8")
    (schemas / "datasets" / "permits.yaml").write_text("""\
dataset: permits
version: 1
title: 临时占道许可
owner: cgj
delivered_by: ["440100", cgj]
catalog: {category: 主题信息资源/城市管理, code: C09-02-01-0001, summary: 临时占用道路许可的登记信息（测试用）。,
          format: 数据库, share: 有条件共享, open: 不予开放, update_cycle: 每周, published_on: "2024-01-01"}
key: [permit_no]
fields:
  - {name: permit_no, title: 许可编号, type: string, required: true, standardize: [trim, halfwidth, upper]}
  - {name: applicant_id_number, title: 申请人身份证号, type: string, check: cn_ric, standardize: [trim, halfwidth, upper]}
  - {name: applicant_name, title: 申请人姓名, type: string}
  - {name: valid_from, title: 有效期起, type: date, required: true, standardize: [trim, halfwidth]}
  - {name: valid_to, title: 有效期止, type: date, standardize: [trim, halfwidth]}
  - {name: road, title: 占用道路地址, type: string}
""", encoding="utf-8")
    reg = load_registry(PROJECT / "catalog", schemas)
    out = tmp_path / "out"
    m = generate(reg, out, rows=3_000, seed=9, datasets=["community_stats", "permits"])
    assert {d.dataset for d in m.deliveries} == {"community_stats", "permits"}
    assert {d.node for d in m.deliveries if d.dataset == "permits"} == {"440100", "cgj"}
    for name in ("community_stats", "permits"):
        c = reg.contracts[name]
        keys = Counter()
        for d in m.deliveries:
            if d.dataset != name or d.expect == "refuse":
                continue
            rows, _ = read_rows(out / d.path, c)
            assert len(rows) == d.rows
            assert dict(detect(c, reg, rows)) == {k: v for k, v in d.defects.items() if k not in FILE_KINDS}
            if d.sequence == 1:
                keys.update(tuple(norm(r[k] or "") for k in c.key) for r in rows)
        dupes = sum(v - 1 for v in keys.values())
        repeats = sum(d.repeats for d in m.deliveries if d.dataset == name and d.sequence == 1)
        assert dupes <= repeats + sum(d.defects.get("district_name", 0) + d.defects.get("missing_required", 0)
                                      for d in m.deliveries if d.dataset == name)
    for r in _values(out, m, reg, "permits"):
        if r["applicant_id_number"] and r["applicant_id_number"] == r["applicant_id_number"].strip() \
                and not FULLWIDTH.search(r["applicant_id_number"]):
            assert len(r["applicant_id_number"]) == 18
        a, b = norm(r["valid_from"] or ""), norm(r["valid_to"] or "")
        if ISO.match(a) and ISO.match(b) and _date_ok(a) and _date_ok(b) and a[:4] > "1900" and b < "2030":
            assert b >= a


def test_documented_rates() -> None:
    doc = (PROJECT / "docs" / "generator.md").read_text(encoding="utf-8")
    for kind in DEFECT_RATES:
        assert f"`{kind}`" in doc, kind
    assert set(ROW_KINDS) <= set(DEFECT_RATES)
