"""Personal data outside bronze, tried as an attacker would (issue 11, points 2 and 3).

* Silver, as a steward: rebuild full ID numbers from the mask, the birth date and the gender beside it
  (GB 11643 check character included) and confirm candidates against the pseudonyms.
* Gold, as an analyst: how many person rows are singled out by the combination of their columns, and
  whether any masked or raw identifier is published.
* Quarantine, statistics, logs, reports, lineage: a delivery full of names and ID numbers in every
  spelling (half-width, full-width, 15-digit, spaced, in ragged rows and in an unmapped 经办人 column) must
  leave none of them in any file of the lake outside bronze.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from collections import Counter
from datetime import date
from pathlib import Path
from statistics import median

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from govlake.context import Context
from govlake.identifiers import RIC_CHECK, RIC_WEIGHTS
from govlake.jobs.ingest.bronze import ingest_file
from govlake.jobs.pipeline import run_pending
from govlake.security import pseudonym_key
from tests.conftest import PROJECT, build_lake, write_csv
from tests.factories import ric_number

pytestmark = pytest.mark.slow

K = 5  # a person row must be indistinguishable from at least K - 1 others


def pid(key: bytes, value: str) -> str:
    """The lake's pseudonym of a value: HMAC-SHA256 with the lake's key (what the conform SQL computes)."""
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Context:
    """A lake from the real pipeline over generated deliveries of every node and dataset."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GOVLAKE_PROJECT", str(PROJECT))
        mp.setenv("GOVLAKE_PSEUDONYM_KEY", "test-key-not-secret")
        yield build_lake(tmp_path_factory.mktemp("pii"), rows=5_000)


# -- point 2: the rebuild attack on silver ----------------------------------------------------------

def candidates(masked: str, birth: date | None, gender: str | None) -> list[str] | None:
    """Every GB 11643 number consistent with what a steward sees in one silver row: the visible characters
    of the mask, the birth date (digits 7-14), the gender (parity of digit 17) and the check character.
    None when the region code is not visible (the search space is then the whole country)."""
    if masked is None or len(masked) != 18 or not masked[:6].isdigit():
        return None
    visible = {i: ch for i, ch in enumerate(masked) if ch != "*"}
    if birth is not None:
        for i, ch in enumerate(birth.strftime("%Y%m%d"), start=6):
            if visible.setdefault(i, ch) != ch:
                return []
    elif any(i not in visible for i in range(6, 14)):
        return None
    body14 = "".join(visible[i] for i in range(14))
    out = []
    for seq in range(1000):
        s = f"{seq:03d}"
        if any(visible.get(14 + j, ch) != ch for j, ch in enumerate(s)):
            continue
        if gender in ("1", "2") and seq % 2 != (1 if gender == "1" else 0):
            continue
        body = body14 + s
        check = RIC_CHECK[sum(int(c) * w for c, w in zip(body, RIC_WEIGHTS)) % 11]
        if visible.get(17, check) == check:
            out.append(body + check)
    return out


def silver_people(ctx: Context) -> list[tuple[str, list[dict]]]:
    """(dataset, rows) of every silver table holding a masked citizen ID number beside its pseudonym."""
    out = []
    for name, c in sorted(ctx.registry.contracts.items()):
        ids = [f for f in c.fields if f.mask == "id" and f.check == "cn_ric" and c.has_pid(f)]
        if not ids or not ctx.lake.exists("silver", name):
            continue
        f = ids[0]
        cols = [f"{f.name}_masked", f"{f.name}_pid"] + [x for x in ("birth_date", "gender") if x in c.field_names]
        rows = [{"masked": r[f"{f.name}_masked"], "pid": r[f"{f.name}_pid"], "birth": r.get("birth_date"),
                 "gender": r.get("gender")} for r in ctx.lake.read("silver", name, columns=cols).to_pylist()]
        out.append((name, rows))
    return out


def test_silver_id_masks_cannot_be_rebuilt_with_the_birth_date_beside_them(lake) -> None:
    key = pseudonym_key(lake.settings)
    tables = silver_people(lake)
    assert {"hukou_population", "migrant_population"} <= {n for n, _ in tables}
    for name, rows in tables:
        if not any(r["birth"] for r in rows):
            continue
        assert len(rows) > 300, name
        found = [candidates(r["masked"], r["birth"], r["gender"]) for r in rows]
        recovered = sum(1 for r, c in zip(rows, found) if c and len(c) == 1 and pid(key, c[0]) == r["pid"])
        assert recovered / len(rows) < 0.01, f"silver.{name}: {recovered} of {len(rows)} ID numbers rebuilt"
        sizes = [len(c) for c in found if c is not None]
        assert median(sizes) >= 100, f"silver.{name}: median {median(sizes)} candidates per person"
        # The attack itself is sound: the real number is among the candidates (checked with the lake's key,
        # which a steward does not have), so a mask showing more digits would be caught above.
        sample = [(r, c) for r, c in zip(rows, found) if c][:100]
        hits = sum(1 for r, c in sample if r["pid"] in {pid(key, x) for x in c})
        assert hits >= 0.9 * len(sample), f"silver.{name}: the attack found {hits} of {len(sample)}"


def test_the_attack_rebuilds_every_number_from_the_old_mask() -> None:
    """The same attack against the mask of af857ff (region, eight hidden birth-date digits, last four)."""
    value = ric_number("440106", "19900307", "123")
    old = value[:6] + "********" + value[-4:]
    assert candidates(old, date(1990, 3, 7), "1") == [value]
    assert len(candidates(value[:6] + "*" * 12, date(1990, 3, 7), "1")) == 500


# -- point 2: gold as analysts read it -----------------------------------------------------------------

def gold_tables(ctx: Context) -> dict[str, pa.Table]:
    return {n: ctx.lake.read("gold", n) for n in ctx.lake.list_tables("gold")}


def person_pids(ctx: Context) -> set[str]:
    return {r["pid"] for _, rows in silver_people(ctx) for r in rows}


def quasi_identifiers(ctx: Context, table: str, columns: list[str]) -> list[str]:
    """The columns that say something about the person: derived (by declared lineage) from a silver table of
    persons, or computed in a gold model over such tables. Columns naming the data item, the rule or the
    nodes (gold.source_conflicts) describe the record, not the person."""
    from govlake.lineage_graph import all_edges
    from govlake.models import load_models

    people = {f"silver.{n}" for n, _ in silver_people(ctx)}
    model = load_models(ctx.settings.schemas_dir).get(table)
    derived_from_people = model is not None and bool(set(model.sources) & people)
    out = []
    for c in columns:
        sources = {e.source for e in all_edges(ctx) if e.target == f"gold.{table}" and e.target_column == c}
        if sources & people or (not sources and derived_from_people):
            out.append(c)
    return out


def test_no_combination_of_gold_columns_singles_out_a_person(lake) -> None:
    pids = person_pids(lake)
    checked = {}
    for name, t in gold_tables(lake).items():
        key_cols = [c for c in t.column_names if pa.types.is_string(t.schema.field(c).type)
                    and pids & set(t.column(c).to_pylist())]
        if not key_cols:
            continue  # not about persons: entities, districts, rules, lineage
        rows = [r for r in t.to_pylist() if any(r[k] in pids for k in key_cols)]
        quasi = quasi_identifiers(lake, name, [c for c in t.column_names if c not in key_cols])
        classes = Counter(tuple(json.dumps(r[c], default=str) for c in quasi) for r in rows)
        unique = sum(1 for r in rows if classes[tuple(json.dumps(r[c], default=str) for c in quasi)] == 1)
        small = sum(n for n in classes.values() if n < K)
        checked[name] = (len(rows), unique, small)
        assert unique / len(rows) < 0.05, f"gold.{name}: {unique} of {len(rows)} person rows unique on {quasi}"
        assert small / len(rows) < 0.10, f"gold.{name}: {small} of {len(rows)} person rows in groups under {K}"
    assert "population" in checked and checked["population"][0] > 1000, checked
    assert "source_conflicts" in checked, checked


def test_gold_publishes_no_identifier_masked_or_raw(lake) -> None:
    masked: set[str] = set()
    raw_ids: set[str] = set()
    raw_names: set[str] = set()
    for name, c in lake.registry.contracts.items():
        hidden = [f for f in c.fields if f.hidden]
        if not hidden or not lake.lake.exists("silver", name):
            continue
        s = lake.lake.read("silver", name, columns=[f"{f.name}_masked" for f in hidden])
        masked |= {v for col in s.columns for v in col.to_pylist() if v and "*" in v}  # a kept USCC is public
        b = lake.lake.read("bronze", name, columns=[f.name for f in hidden])
        for f in hidden:
            values = {v.strip() for v in b.column(f.name).to_pylist() if v and v.strip()}
            if f.mask == "name":
                raw_names |= {v for v in values if len(v) <= 4}  # a person's (a holder may be a company)
            elif f.mask == "phone" or f.check == "cn_ric":
                raw_ids |= values
    assert masked and raw_ids and raw_names
    for name, t in gold_tables(lake).items():
        assert not [c for c in t.column_names if c.endswith("_masked")], f"gold.{name}"
        for col in t.column_names:
            if not (pa.types.is_string(t.schema.field(col).type) or pa.types.is_large_string(t.schema.field(col).type)):
                continue
            values = {v for v in t.column(col).to_pylist() if v}
            assert not values & masked, f"gold.{name}.{col} holds masked identifiers: {sorted(values & masked)[:3]}"
            assert not values & raw_names, f"gold.{name}.{col} holds names"
            runs = {m for v in values for m in re.findall(r"[0-9]{11,18}X?", v)}
            assert not runs & raw_ids, f"gold.{name}.{col} holds identifiers"


# -- point 3: nothing raw outside bronze ---------------------------------------------------------------

HUKOU = ["公民身份号码", "姓名", "性别", "出生日期", "户籍地行政区划", "住址", "登记日期", "经办人"]
NAMES = ["欧阳明华", "司马怀远", "诸葛青云", "上官婉清", "皇甫嵩涛", "东方既白"]
CLERK = "慕容秋水"
IDS = [ric_number("440106", "19900307", "123"), ric_number("440104", "19851111", "246"),
       ric_number("440105", "19770101", "357"), ric_number("440111", "20010520", "468"),
       ric_number("440113", "19950505", "579")]
FULLWIDTH = IDS[1].translate(str.maketrans("0123456789X", "０１２３４５６７８９Ｘ"))
SPACED = f"{IDS[2][:6]} {IDS[2][6:14]} {IDS[2][14:]}"
ID15 = IDS[3][:6] + IDS[3][8:17]  # the old 15-digit form: two-digit year, no check character


def hostile_delivery(tmp_path: Path) -> Path:
    rows = [
        [IDS[0], NAMES[0], "男", "1990-02-30", "440106", "广州市天河区体育西路1号", "2020-01-02", CLERK],
        [FULLWIDTH, NAMES[1], "男", "1985-11-11", "440104", "越秀区北京路2号", "2099-01-01", CLERK],
        [SPACED, NAMES[2], "女", "1977-01-01", "440105", "海珠区某路3号", "2020-01-02", CLERK],
        [ID15, NAMES[3], "女", "2001-05-20", "440111", "白云区某路4号", "2020-01-02", CLERK],
        [IDS[0], NAMES[4], IDS[1], IDS[2], "440106", NAMES[4], "2020-01-02", CLERK],  # values in the wrong columns
        [IDS[4], NAMES[5], "男", "1995-05-05", "440113", "番禺区某路5号", "2020-01-02", CLERK],  # valid: to silver
    ]
    f = write_csv(tmp_path / "hukou_population__gaj__20261101__1.csv", HUKOU, rows)
    ragged = f"{IDS[3]},{NAMES[0]},{FULLWIDTH},{SPACED},{ID15},{CLERK},{NAMES[1]},{NAMES[2]},x,y,z\n"
    f.write_bytes(f.read_bytes() + ragged.encode("utf-8"))
    return f


def secrets() -> list[str]:
    """Every spelling of every personal value delivered, as a scan looks for them."""
    values = set(NAMES) | {CLERK, FULLWIDTH, SPACED, ID15} | set(IDS)
    values |= {v.replace(" ", "") for v in values} | {v[:17] for v in IDS}  # the 17-digit body too
    return sorted(values)


def texts_of_parquet(path: Path) -> list[str]:
    """Values and footer statistics of a Parquet file as text (pages are compressed: the bytes alone
    would not show them)."""
    out = [json.dumps(r, ensure_ascii=False, default=str) for r in pq.read_table(path).to_pylist()]
    meta = pq.read_metadata(path)
    for g in range(meta.num_row_groups):
        for c in range(meta.num_columns):
            st = meta.row_group(g).column(c).statistics
            if st is not None and st.has_min_max:
                out += [str(st.min), str(st.max)]
    return out


def test_no_raw_personal_value_outside_bronze(ctx, engine, tmp_path: Path) -> None:
    from govlake.jobs.quality.report import build_report

    result = ingest_file(ctx, hostile_delivery(tmp_path), "gaj", "hukou_population")
    assert result.status == "ingested", result.message
    report = run_pending(ctx, engine)
    [conformed] = [r for r in report.conformed if r.dataset == "hukou_population"]
    assert conformed.quarantined == 6 and conformed.silver_rows == 1 and conformed.balanced
    q = ctx.lake.read("quarantine", "hukou_population").to_pylist()
    ragged = next(r for r in q if r["_failures"] == ["row.ragged"])
    assert ragged["_raw"].count(",") == 10 and set(ragged["_raw"]) <= set("9*, ")  # its shape, still legible
    # The unmapped header is unclassified text as well (not the project's wording): redacted like its value.
    assert all(json.loads(r["_extra"]) == {"…": "****"} for r in q if r["_extra"])
    build_report(ctx, Path(ctx.settings.lake_root) / "_reports" / "quality", data_docs=False)

    root = Path(ctx.settings.lake_root)
    needles = [(s, s.encode("utf-8")) for s in secrets()]
    scanned = 0
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root)
        if rel.parts[0] in ("bronze", "_secrets"):
            continue
        blob = path.read_bytes()
        texts = texts_of_parquet(path) if path.suffix == ".parquet" else []
        for s, b in needles:
            assert b not in blob, f"{rel} holds {s!r}"
            assert not any(s in t for t in texts), f"{rel} holds {s!r} (Parquet values or statistics)"
        scanned += 1
    assert scanned > 20 and (root / "quarantine" / "hukou_population").is_dir()
    # Personal values kept as such (birth date, gender) have no statistics: neither footers nor the log.
    private = {"birth_date", "gender"}
    for layer in ("silver", "quarantine"):
        table = root / layer / "hukou_population"
        for part in table.glob("*.parquet"):
            meta = pq.read_metadata(part)
            for g in range(meta.num_row_groups):
                for c in range(meta.num_columns):
                    col = meta.row_group(g).column(c)
                    assert col.path_in_schema not in private or not (col.statistics and col.statistics.has_min_max), part
        for log in (table / "_delta_log").glob("*.json"):
            for line in log.read_text(encoding="utf-8").splitlines():
                stats = json.loads(json.loads(line)["add"].get("stats") or "{}") if '"add"' in line else {}
                assert not private & set(stats.get("minValues", {})), (log, stats)


def test_shifted_columns_keep_no_personal_value_in_quarantine(ctx, engine, tmp_path: Path) -> None:
    """A department that shifts its columns puts a name and an ID number under 登记日期 (a date the contract
    calls non-personal) and an ID number under 户籍地行政区划: what fails the field's own type is unclassified
    text, and free text keeps no ID-like digit run."""
    rows = [[IDS[0], NAMES[0], "男", "1990-03-07", IDS[1], "天河区某路1号", f"{NAMES[1]} {IDS[2]}", ""]]
    f = write_csv(tmp_path / "hukou_population__gaj__20261101__3.csv", HUKOU, rows)
    assert ingest_file(ctx, f, "gaj", "hukou_population").status == "ingested"
    run_pending(ctx, engine)
    [q] = ctx.lake.read("quarantine", "hukou_population").to_pylist()
    text = json.dumps(q, ensure_ascii=False, default=str)
    for value in (NAMES[1], IDS[1], IDS[2], IDS[1][:17], IDS[2][:17]):
        assert value not in text, value
    assert q["registered_on"] is None or set(str(q["registered_on"])) <= set("9* ")


def test_title_and_footer_lines_keep_no_name_in_the_batch_log(ctx, tmp_path: Path) -> None:
    """Title and footer rows of a workbook are not data, but their text is unclassified: the project's own
    words stay legible, the person's name, any other text and any number do not."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.append([f"户籍人口数据 {NAMES[0]} 报送"])
    ws.append(HUKOU)
    ws.append([IDS[4], NAMES[5], "男", "1995-05-05", "440113", "番禺区某路5号", "2020-01-02", CLERK])
    ws.append([f"制表人：{CLERK}", f"电话 {IDS[1][:11]}"])
    path = tmp_path / "hukou_population__gaj__20261101__2.xlsx"
    wb.save(path)
    result = ingest_file(ctx, path, "gaj", "hukou_population")
    assert result.status == "ingested" and result.rows == 1, result.message
    [batch] = ctx.lake.read("meta", "ingest_batches").to_pylist()
    skipped = json.loads(batch["skipped_lines"])
    assert len(skipped) == 2 and "标题" in skipped[0] and "表尾" in skipped[1] and "电话" in skipped[1]
    for value in (CLERK, NAMES[0], IDS[1][:11]):
        assert value not in batch["skipped_lines"]


def test_failed_runs_leave_no_name_in_lineage_events(ctx) -> None:
    """A FAIL event's errorMessage is unclassified text: names, ID numbers and file names are masked,
    the project's own wording stays."""
    from govlake.lineage_events import DatasetRef

    message = (f"CSV 无法解析：Expected 8 columns, got 3: {NAMES[0]},{FULLWIDTH},{SPACED}\n"
               f"位置：/landing/{CLERK}的名单.csv\n处理建议：检查引号与分隔符是否成对、完整")
    with pytest.raises(RuntimeError):
        with ctx.lineage.run("ingest.hukou_population", [], [DatasetRef("bronze", "hukou_population")]):
            raise RuntimeError(message)
    with ctx.lineage.run("ingest.hukou_population", [], []) as ol:
        ol.fail(f"拒收：{NAMES[1]} {IDS[0]}")
    text = ctx.lineage.events_path.read_text(encoding="utf-8")
    events = [json.loads(line) for line in text.splitlines()]
    errors = [e["run"]["facets"]["errorMessage"]["message"] for e in events if e["eventType"] == "FAIL"]
    assert len(errors) == 2 and "CSV 无法解析" in errors[0] and "处理建议" in errors[0] and "拒收" in errors[1]
    for s in secrets():
        assert s not in text and json.dumps(s)[1:-1] not in text, s
    assert os.path.getsize(ctx.lineage.events_path) > 0
