"""``govlake generate``: realistic, seeded, defect-injected deliveries for every node and dataset.

The generator is generic over contracts: it reads every dataset contract and the 1+11+N node registry and
needs no change when a contract is added. ``rows`` is the total number of data rows over all deliveries
(the scale knob); it is split over datasets by weight and over the delivering nodes, every node of a dataset
gets an initial full delivery and, depending on the dataset's update cycle, later update deliveries that
re-deliver some keys with changes plus new keys. Defects are injected at documented rates
(``DEFECT_RATES``) and counted per file in ``manifest.json`` so that later stages can be checked against
what was put in. Same seed and arguments give byte-identical files; all dates are relative to
``REF_DATE`` (2026-11-20), never to today.

Layout: ``out_dir/<node>/<dataset>/<dataset>__<node>__<YYYYMMDD>__<seq>.<ext>`` (``<seq>-<part>`` when a
delivery is split into several files by ``max_rows_per_file``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from govlake.contracts import CYCLE_DAYS, Contract, normalize_header
from govlake.errors import RegistryError, did_you_mean
from govlake.identifiers import RIC_CHECK, USCC_ALPHABET, ric_check_char
from govlake.devkit.synth import (
    DISTRICT_WEIGHTS,
    REF_DATE,
    VOCAB,
    DatasetModel,
    Rows,
    World,
    affine,
    build_world,
    const,
    day_of,
    random_names,
    salt_of,
    ts_text,
)
from govlake.devkit.writers import CsvWriter, JsonlWriter, ParquetFileWriter, XlsxWriter
from govlake.registry import Registry

# Row-level kinds are shares of data rows (a row carries at most one); file-level kinds are probabilities
# per file (refused_file: one file per run).
DEFECT_RATES: dict[str, float] = {
    "bad_check_char": 0.005,     # ID number / USCC with a wrong check character                 -> invalid
    "impossible_date": 0.003,    # 2021-02-30, 2021-13-01; ID numbers with an impossible birth date -> invalid
    "mixed_date_format": 0.08,   # 2021/3/5, 2021年3月5日, 20210305, 2021.03.05                   -> valid
    "fullwidth_digits": 0.02,    # ４４０１０６ in codes, numbers and dates                      -> valid
    "district_name": 0.05,       # 天河区 / 天河 / 广州市天河区 instead of 440106                 -> valid
    "missing_required": 0.003,   # empty required value                                          -> invalid
    "out_of_range": 0.002,       # number outside min/max, future date where not_future, too early -> invalid
    "ragged_row": 0.0005,        # CSV line with one field too many or too few                  -> invalid
    "whitespace": 0.03,          # leading/trailing spaces                                       -> valid
    "excel_float_id": 0.4,       # per XLSX file with ID columns: ID cells saved as Excel numbers  -> invalid
    "schema_drift": 0.25,        # per file: alias headers, reordered, extra column, dropped optional column
    "refused_file": 1.0,         # one file per run (rows >= 10_000): header of another dataset   -> refused
}
ROW_KINDS = ("bad_check_char", "impossible_date", "mixed_date_format", "fullwidth_digits", "district_name",
             "missing_required", "out_of_range", "ragged_row", "whitespace")
INVALID_KINDS = frozenset({"bad_check_char", "impossible_date", "missing_required", "out_of_range", "ragged_row",
                           "excel_float_id", "refused_file"})
REPEAT_RATE = 0.02        # rows repeating an earlier key of the same file (the last row wins)
REDELIVER_RATE = 0.05     # share of already delivered keys an update delivery re-delivers with changes
INITIAL_SHARE = 0.85      # share of a node's rows in its initial full delivery when it has updates
LATE_RATE = 0.2           # update deliveries delivered well past the update cycle
TYPED_PARQUET_RATE = 0.5  # Parquet files with integer/decimal columns (else all strings)
XLSX_MAX_ROWS = 50_000    # larger XLSX deliveries fall back to CSV (GB18030)
CHUNK_ROWS = 500_000
MIN_ROWS = 8              # every dataset x node gets at least this many rows
REFUSED_ROWS = 40
UPDATES = {"实时": 3, "每日": 3, "每周": 2, "每月": 2, "每季度": 1, "每半年": 1, "每年": 1}
FORMAT_MIX = (("csv", "utf-8", False), ("csv", "gb18030", False), ("xlsx", None, False), ("csv", "utf-8", True),
              ("parquet", None, False), ("jsonl", None, False), ("csv", "gb18030", False), ("xlsx", None, False),
              ("csv", "utf-8", False), ("parquet", None, False))
EXTRA_COLUMNS = ("备注", "数据更新时间", "序号", "经办人")
EXT = {"csv": "csv", "xlsx": "xlsx", "jsonl": "jsonl", "parquet": "parquet"}


# -- manifest -------------------------------------------------------------------------------------------

@dataclass
class Delivery:
    path: str                     # relative to the output directory
    node: str
    dataset: str
    format: str                   # csv | xlsx | jsonl | parquet
    encoding: str | None          # utf-8 | gb18030 | None (binary formats)
    rows: int                     # data rows (no title, header or footer lines)
    delivered_on: date
    sequence: int                 # 1 = initial full delivery, 2.. = update deliveries
    late: bool
    defects: dict[str, int]       # kind -> rows affected
    expect: str = "ingest"        # ingest | refuse
    part: int = 1
    parts: int = 1
    bom: bool = False
    repeats: int = 0              # rows repeating an earlier key of the same file
    redelivered: int = 0          # keys delivered before, re-delivered with changes
    new_keys: int = 0
    columns: list[str] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)

    @property
    def invalid_rows(self) -> int:
        """Rows the conform step should quarantine (row-level invalid kinds plus Excel-mangled IDs)."""
        return sum(v for k, v in self.defects.items() if k in INVALID_KINDS and k != "refused_file")


@dataclass
class Manifest:
    deliveries: list[Delivery]
    seed: int = 0
    rows_requested: int = 0
    defects_enabled: bool = True
    reference_date: date = REF_DATE

    @property
    def total_rows(self) -> int:
        return sum(d.rows for d in self.deliveries)

    @property
    def total_files(self) -> int:
        return len(self.deliveries)

    def defect_totals(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for d in self.deliveries:
            for k, v in d.defects.items():
                out[k] = out.get(k, 0) + v
        return dict(sorted(out.items()))

    def totals(self) -> dict:
        return {
            "files": self.total_files,
            "rows": self.total_rows,
            "refused_files": sum(1 for d in self.deliveries if d.expect == "refuse"),
            "late_deliveries": sum(1 for d in self.deliveries if d.late),
            "repeats": sum(d.repeats for d in self.deliveries),
            "defects": self.defect_totals(),
            "by_format": {f: sum(1 for d in self.deliveries if d.format == f)
                          for f in sorted({d.format for d in self.deliveries})},
        }

    def to_dict(self) -> dict:
        return {
            "reference_date": self.reference_date.isoformat(),
            "seed": self.seed,
            "rows_requested": self.rows_requested,
            "defects_enabled": self.defects_enabled,
            "defect_rates": DEFECT_RATES,
            "totals": self.totals(),
            "deliveries": [{**asdict(d), "delivered_on": d.delivered_on.isoformat()} for d in self.deliveries],
        }

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> "Manifest":
        path = Path(path)
        if path.is_dir():
            path = path / "manifest.json"
        doc = json.loads(path.read_text(encoding="utf-8"))
        fields = set(Delivery.__dataclass_fields__)
        deliveries = [Delivery(**{**{k: v for k, v in d.items() if k in fields},
                                  "delivered_on": date.fromisoformat(d["delivered_on"])}) for d in doc["deliveries"]]
        return cls(deliveries=deliveries, seed=doc.get("seed", 0), rows_requested=doc.get("rows_requested", 0),
                   defects_enabled=doc.get("defects_enabled", True),
                   reference_date=date.fromisoformat(doc.get("reference_date", REF_DATE.isoformat())))


# -- planning ---------------------------------------------------------------------------------------------

@dataclass
class FilePlan:
    dataset: str
    node: str
    seq: int
    rows: int
    repeats: int
    redelivered: int
    new_keys: int
    new_start: int          # local ordinal of the first new key
    known: int              # keys of this node delivered before (local ordinals [0, known))
    delivered_on: date
    late: bool
    fmt: str
    encoding: str | None
    bom: bool
    part: int = 1
    parts: int = 1
    expect: str = "ingest"
    foreign: str | None = None


@dataclass
class ItemPlan:
    """One dataset x delivering node."""

    dataset: str
    node: str
    node_index: int
    weight: float
    rows: int = 0
    key_offset: int = 0
    keys: int = 0
    initial_keys: int = 0
    last_day: int = 0
    files: list[FilePlan] = field(default_factory=list)


def dataset_weight(m: DatasetModel) -> float:
    """Relative volume: people and entity registers large, statistics and monthly data small."""
    c = m.c
    if m.role == "native":
        return 14.0
    if m.role == "migrant":
        return 10.0
    if m.role == "any":
        return 5.0
    if m.registry_pool == "9":
        return 8.0
    if m.registry_pool == "5":
        return 1.5
    if c.catalog.update_cycle in ("每月", "每季度", "每半年", "每年") or "统计" in c.title:
        return 0.6
    return 3.0 if c.catalog.base else 2.0


def _node_formats(registry: Registry, seed: int, forced: list[str] | None) -> dict[str, tuple[str, str | None, bool]]:
    codes = sorted(registry.nodes)
    order = np.random.default_rng([seed, 7]).permutation(len(codes))
    out = {}
    for rank, i in enumerate(order):
        fmt = FORMAT_MIX[rank % len(FORMAT_MIX)]
        if forced and fmt[0] not in forced:
            f = forced[rank % len(forced)]
            fmt = (f, "utf-8" if f == "csv" else None, False)
        out[codes[i]] = fmt
    return out


def _allocate(total: int, weights: np.ndarray, floor: int, caps: np.ndarray) -> np.ndarray:
    n = len(weights)
    floor = min(floor, max(1, total // max(n, 1)))
    alloc = np.minimum(np.full(n, floor, dtype=np.int64), caps)
    remaining = total - int(alloc.sum())
    free = alloc < caps
    while remaining > 0 and free.any():
        w = np.where(free, weights, 0.0)
        share = remaining * w / w.sum()
        add = np.floor(share).astype(np.int64)
        rest = remaining - int(add.sum())
        if rest > 0:
            order = np.argsort(-(share - add), kind="stable")[:rest]
            add[order] += 1
        new = np.minimum(alloc + add, caps)
        remaining -= int((new - alloc).sum())
        alloc = new
        free = alloc < caps
    return alloc


def plan(registry: Registry, world_models: dict[str, DatasetModel], rows: int, seed: int, datasets: list[str],
         nodes: list[str] | None, formats: list[str] | None, defects: bool, max_rows_per_file: int,
         key_start: int = 0, updates: bool = True) -> list[ItemPlan]:
    rng = np.random.default_rng([seed, 1])
    items: list[ItemPlan] = []
    for name in datasets:
        m = world_models[name]
        deliverers = [n for n in registry.deliverers(m.c) if nodes is None or n in nodes]
        dw = dataset_weight(m)
        shares = np.array([1.2 if registry.nodes[n].kind == "district" else 1.0 for n in deliverers])
        shares = np.array([DISTRICT_WEIGHTS.get(n, s) for n, s in zip(deliverers, shares)])
        for i, node in enumerate(deliverers):
            items.append(ItemPlan(name, node, i, dw * shares[i] / shares.sum()))
    if not items:
        return items
    caps = np.array([(lambda c: int(c * (1 - REPEAT_RATE * 2)) if c else 10**12)(world_models[it.dataset].capacity(it.node))
                     for it in items], dtype=np.int64)
    alloc = _allocate(rows, np.array([it.weight for it in items]), MIN_ROWS, caps)
    for it, a in zip(items, alloc):
        it.rows = int(a)

    host = None
    if defects and rows >= 10_000:
        candidates = [i for i, it in enumerate(items) if it.rows >= 10 * REFUSED_ROWS]
        if candidates:
            host = items[candidates[int(rng.integers(len(candidates)))]]
            host.rows -= REFUSED_ROWS

    fmts = _node_formats(registry, seed, formats)
    ref_day = day_of(REF_DATE)
    for it in items:
        m = world_models[it.dataset]
        cycle = m.c.catalog.update_cycle
        period = CYCLE_DAYS.get(cycle, 30)
        n_updates = UPDATES.get(cycle, 1) if it.rows >= 40 and updates else 0
        if it.rows < 200:
            n_updates = min(n_updates, 1)
        sizes = [it.rows] if n_updates == 0 else \
            [int(round(it.rows * INITIAL_SHARE))] + _split(it.rows - int(round(it.rows * INITIAL_SHARE)), n_updates)
        # delivery dates, newest first: the last one a few days before the reference date
        last = ref_day - int(rng.integers(0, min(period, 4)))
        days = [last]
        late = [False] * len(sizes)
        for j in range(len(sizes) - 1, 0, -1):
            if rng.random() < LATE_RATE:
                gap = period * int(rng.integers(3, 6)) + int(rng.integers(2, 8))
                late[j] = True
            else:
                gap = period
            days.insert(0, days[0] - gap)
        it.last_day = last
        fmt, enc, bom = fmts.get(it.node, ("csv", "utf-8", False))
        known = 0
        for seq, size in enumerate(sizes, start=1):
            reps = int(rng.binomial(size, REPEAT_RATE)) if defects and size >= 10 else 0
            reps = min(reps, max(0, size // 2 - 1))
            distinct = size - reps
            red = min(int(round(REDELIVER_RATE * known)), int(0.6 * distinct)) if seq > 1 else 0
            delivered_on = date.fromordinal(date(1970, 1, 1).toordinal() + days[seq - 1])
            parts = max(1, math.ceil(size / max_rows_per_file))
            part_rows = _split(size, parts)
            part_reps = _split_like(reps, part_rows, size)
            part_red = _split_like(red, part_rows, size)
            start = known
            for p in range(parts):
                f_fmt, f_enc, f_bom = fmt, enc, bom
                if f_fmt == "xlsx" and part_rows[p] > XLSX_MAX_ROWS:
                    f_fmt, f_enc, f_bom = "csv", "gb18030", False
                p_new = part_rows[p] - part_reps[p] - part_red[p]
                it.files.append(FilePlan(it.dataset, it.node, seq, part_rows[p], part_reps[p], part_red[p], p_new,
                                         start, known, delivered_on, late[seq - 1], f_fmt, f_enc, f_bom,
                                         part=p + 1, parts=parts))
                start += p_new
            known = start
            if seq == 1:
                it.initial_keys = known
        it.keys = known
    if host is not None:
        others = [n for n in datasets if n != host.dataset and not _shares_key_header(world_models[n].c,
                                                                                       world_models[host.dataset].c)]
        if not others:
            others = [n for n in registry.contracts if n != host.dataset and not _shares_key_header(
                registry.contracts[n], world_models[host.dataset].c)]
        foreign = others[int(rng.integers(len(others)))] if others else None
        last = host.files[-1]
        host.files.append(FilePlan(host.dataset, host.node, last.seq + 1, REFUSED_ROWS, 0, 0, 0, host.keys, host.keys,
                                   last.delivered_on, False,
                                   "csv" if last.fmt == "xlsx" and REFUSED_ROWS > XLSX_MAX_ROWS else last.fmt,
                                   last.encoding, last.bom, expect="refuse", foreign=foreign or "__bogus__"))
    # global key ordinals: nodes of a dataset get consecutive blocks, from key_start
    offsets: dict[str, int] = {}
    for it in items:
        it.key_offset = offsets.get(it.dataset, key_start)
        offsets[it.dataset] = it.key_offset + it.keys
    return items


def _split(total: int, parts: int) -> list[int]:
    base, rest = divmod(total, max(parts, 1))
    return [base + (1 if i < rest else 0) for i in range(max(parts, 1))]


def _split_like(total: int, sizes: list[int], whole: int) -> list[int]:
    if not whole:
        return [0] * len(sizes)
    cum = np.round(np.cumsum(sizes) * total / whole).astype(np.int64)
    return [int(x) for x in np.diff(np.concatenate([[0], cum]))]


def _shares_key_header(other: Contract, c: Contract) -> bool:
    lookup = c.header_map()
    return any(lookup.get(normalize_header(h)) in c.key for f in other.fields for h in f.headers)


# -- defects --------------------------------------------------------------------------------------------------

_FULL = str.maketrans({**{chr(48 + i): chr(0xFF10 + i) for i in range(10)},
                       **{chr(65 + i): chr(0xFF21 + i) for i in range(26)},
                       **{chr(97 + i): chr(0xFF41 + i) for i in range(26)}})
_FULL_PAIRS = [(chr(48 + i), chr(0xFF10 + i)) for i in range(10)] + \
    [(chr(65 + i), chr(0xFF21 + i)) for i in range(26)] + [(chr(97 + i), chr(0xFF41 + i)) for i in range(26)]
_ASCII_VALUE_KINDS = {"ric", "uscc", "mixed_id", "date", "timestamp", "number", "serial", "pattern", "phone", "district",
                      "fk", "gb2260"}


class Defects:
    """Which fields each defect kind can hit in one file, and how it rewrites values."""

    def __init__(self, model: DatasetModel, fmt: str, typed: set[str], enabled: bool,
                 present: set[str] | None = None) -> None:
        self.m = model
        specs = [s for s in model.specs.values() if present is None or s.name in present]
        self.enabled = enabled
        e: dict[str, list[str]] = {k: [] for k in ROW_KINDS}
        for s in specs:
            f = s.f
            text_ok = s.name not in typed
            if s.kind in ("ric", "uscc"):
                e["bad_check_char"].append(s.name)
            if (s.kind in ("date", "timestamp") or s.kind == "ric") and text_ok:
                e["impossible_date"].append(s.name)
            if s.kind in ("date", "timestamp") and text_ok:
                e["mixed_date_format"].append(s.name)
            if "halfwidth" in f.standardize and s.kind in _ASCII_VALUE_KINDS and text_ok:
                e["fullwidth_digits"].append(s.name)
            if s.kind == "district" and "district_code" in f.standardize and text_ok:
                e["district_name"].append(s.name)
            if f.required:
                e["missing_required"].append(s.name)
            if (s.kind == "number" and (f.min is not None or f.max is not None)) or \
                    (s.kind in ("date", "timestamp") and (f.not_future or f.min_date) and text_ok):
                e["out_of_range"].append(s.name)
            if "trim" in f.standardize and text_ok:
                e["whitespace"].append(s.name)
        if fmt == "csv":
            e["ragged_row"] = ["*"]
        self.eligible = {k: v for k, v in e.items() if v}

    def apply(self, rows: Rows, rng: np.random.Generator) -> tuple[dict[str, pa.Array], np.ndarray, dict[str, int]]:
        """Rewrite values in place; returns (values, row kind index per row (-1 none), counts)."""
        n = rows.n
        kinds = np.full(n, -1, dtype=np.int8)
        counts: dict[str, int] = {}
        values = dict(rows.values)
        if not self.enabled or not self.eligible:
            return values, kinds, counts
        active = [k for k in ROW_KINDS if k in self.eligible]
        rates = np.array([DEFECT_RATES[k] for k in active])
        u = rng.random(n)
        pick = np.searchsorted(np.cumsum(rates), u, side="right")
        for ki, kind in enumerate(active):
            idx = np.flatnonzero(pick == ki)
            if not len(idx):
                continue
            if kind == "ragged_row":
                kinds[idx] = ROW_KINDS.index(kind)
                counts[kind] = len(idx)
                continue
            names = self.eligible[kind]
            valid = np.stack([~pc.is_null(values[nm]).to_numpy(zero_copy_only=False)[idx] for nm in names], axis=1)
            score = rng.random(valid.shape) * valid
            target = np.argmax(score, axis=1)
            ok = valid.any(axis=1)
            idx, target = idx[ok], target[ok]
            for j, nm in enumerate(names):
                sel = idx[target == j]
                if not len(sel):
                    continue
                old = values[nm].take(pa.array(sel))
                new = self.rewrite(kind, self.m.specs[nm], old, rng)
                mask = np.zeros(n, dtype=bool)
                mask[sel] = True
                values[nm] = pc.replace_with_mask(values[nm], pa.array(mask), new.cast(pa.string()))
            kinds[idx] = ROW_KINDS.index(kind)
            if len(idx):
                counts[kind] = len(idx)
        return values, kinds, counts

    def rewrite(self, kind: str, s, old: pa.Array, rng: np.random.Generator) -> pa.Array:
        vals = old.to_pylist()
        k = len(vals)
        if kind == "bad_check_char":
            alphabet = RIC_CHECK if s.kind == "ric" else USCC_ALPHABET
            out = []
            for v, r in zip(vals, rng.integers(1, len(alphabet), k)):
                i = alphabet.index(v[-1]) if v[-1] in alphabet else 0
                out.append(v[:-1] + alphabet[(i + int(r)) % len(alphabet)])
            return pa.array(out, pa.string())
        if kind == "impossible_date":
            bad = ["02-30", "02-31", "04-31", "06-31", "09-31", "11-31", "13-01", "00-10", "13-15"]
            choice = rng.integers(0, len(bad), k)
            out = []
            for v, c in zip(vals, choice):
                md = bad[int(c)]
                if s.kind == "ric":
                    body = v[:10] + md.replace("-", "") + v[14:17]
                    out.append(body + ric_check_char(body))
                else:
                    out.append(v[:4] + "-" + md + v[10:])
            return pa.array(out, pa.string())
        if kind == "mixed_date_format":
            y = pc.utf8_slice_codeunits(old, 0, 4)
            mo = pc.utf8_slice_codeunits(old, 5, 7)
            d = pc.utf8_slice_codeunits(old, 8, 10)
            rest = pc.utf8_slice_codeunits(old, 10, 19)
            mo_n = pc.cast(pc.cast(mo, pa.int32()), pa.string())
            d_n = pc.cast(pc.cast(d, pa.int32()), pa.string())
            n = len(old)
            if s.kind == "timestamp":
                hm = pc.utf8_slice_codeunits(old, 10, 16)
                tail = pc.utf8_slice_codeunits(old, 11, 19)
                variants = [
                    pc.binary_join_element_wise(y, "/", mo_n, "/", d_n, rest, ""),
                    pc.binary_join_element_wise(y, "年", mo_n, "月", d_n, "日", rest, ""),
                    pc.binary_join_element_wise(y, "-", mo, "-", d, "T", tail, ""),
                    pc.binary_join_element_wise(y, "-", mo, "-", d, hm, ""),
                ]
            else:
                variants = [
                    pc.binary_join_element_wise(y, "/", mo_n, "/", d_n, ""),
                    pc.binary_join_element_wise(y, "年", mo_n, "月", d_n, "日", ""),
                    pc.binary_join_element_wise(y, mo, d, ""),
                    pc.binary_join_element_wise(y, ".", mo, ".", d, ""),
                ]
            return pc.choose(pa.array(rng.integers(0, len(variants), n)), *variants)
        if kind == "fullwidth_digits":
            arr = old
            for a, b in _FULL_PAIRS:
                arr = pc.replace_substring(arr, a, b)
            return arr
        if kind == "district_name":
            lst = self.m.reg.district_codes
            codes = [c.code for c in lst.codes]
            spellings = [[c.label, *c.aliases] for c in lst.codes]
            width = max(len(sp) for sp in spellings)
            pos = pc.index_in(old, value_set=pa.array(codes)).to_numpy(zero_copy_only=False)
            pick = np.minimum(rng.choice(width, size=k, p=_spelling_weights(width)), width - 1)
            out = [spellings[int(p)][min(int(j), len(spellings[int(p)]) - 1)] if p == p else v
                   for p, j, v in zip(pos, pick, vals)]
            return pa.array(out, pa.string())
        if kind == "missing_required":
            return pa.nulls(k, pa.string())
        if kind == "out_of_range":
            return pa.array(self._out_of_range(s, vals, rng), pa.string())
        if kind == "whitespace":
            li = rng.integers(0, 3, k)
            ti = np.where(li == 0, rng.integers(1, 3, k), rng.integers(0, 3, k))
            spaces = [const("", k), const(" ", k), const("  ", k)]
            lead = pc.choose(pa.array(li), *spaces)
            trail = pc.choose(pa.array(ti), *spaces)
            return pc.binary_join_element_wise(lead, old, trail, "")
        raise ValueError(kind)

    @staticmethod
    def _out_of_range(s, vals: list[str], rng: np.random.Generator) -> list[str]:
        f = s.f
        out = []
        for v in vals:
            if s.kind == "number":
                lo, hi = f.min, f.max
                above = hi is not None and (lo is None or rng.random() < 0.7)
                span = max(1.0, (hi - lo) if (hi is not None and lo is not None) else abs(hi or lo or 100))
                x = hi + 1 + rng.random() * span * 0.5 if above else lo - 1 - rng.random() * max(10.0, span * 0.1)
                out.append(str(int(math.floor(x))) if f.type == "integer" else f"{x:.{min(f.scale, 2)}f}")
            else:
                future = f.not_future and (not f.min_date or rng.random() < 0.7)
                day = day_of(REF_DATE) + int(rng.integers(365 * 3, 365 * 10)) if future else \
                    day_of(f.min_date) - int(rng.integers(1, 3000))
                text = (date(1970, 1, 1) + timedelta(days=day)).isoformat()
                out.append(text + (v[10:] if s.kind == "timestamp" and v and len(v) > 10 else ""))
        return out


def _spelling_weights(width: int) -> np.ndarray:
    w = np.array([0.5, 0.25, 0.2, 0.05] + [0.02] * max(0, width - 4))[:width]
    return w / w.sum()


# -- headers and schema drift ---------------------------------------------------------------------------------

@dataclass
class Column:
    header: str
    field: str | None      # contract field, or None for an unknown extra column
    extra: str | None = None


def columns_for(model: DatasetModel, rng: np.random.Generator, drift: bool) -> tuple[list[Column], list[str]]:
    c = model.c
    cols = [Column(f.title, f.name) for f in c.fields]
    if not drift:
        return cols, []
    variants = ["alias", "reorder", "extra_column", "dropped_column"]
    optional = [f.name for f in c.fields if not f.required and f.name not in c.key]
    has_alias = any(f.aliases for f in c.fields)
    possible = [v for v in variants if (v != "dropped_column" or optional) and (v != "alias" or has_alias)]
    chosen = sorted(set(rng.choice(possible, size=min(len(possible), int(rng.integers(1, 3))), replace=False)),
                    key=variants.index)
    notes: list[str] = []
    if "alias" in chosen:
        changed = []
        for col in cols:
            f = c.field(col.field)
            if f.aliases and rng.random() < 0.5:
                col.header = f.aliases[int(rng.integers(len(f.aliases)))]
                changed.append(col.header)
        notes.append("alias:" + "、".join(changed) if changed else "alias")
    if "dropped_column" in chosen:
        drop = optional[int(rng.integers(len(optional)))]
        cols = [col for col in cols if col.field != drop]
        notes.append(f"dropped_column:{drop}")
    if "extra_column" in chosen:
        known = c.header_map()
        extras = [h for h in EXTRA_COLUMNS if normalize_header(h) not in known]
        if extras:
            h = extras[int(rng.integers(len(extras)))]
            cols.insert(int(rng.integers(0, len(cols) + 1)), Column(h, None, h))
            notes.append(f"extra_column:{h}")
    if "reorder" in chosen:
        cols = [cols[i] for i in rng.permutation(len(cols))]
        notes.append("reorder")
    return cols, notes


def extra_values(name: str, n: int, first_row: int, asof: int, rng: np.random.Generator) -> pa.Array:
    if name == "序号":
        return pa.array(np.arange(first_row, first_row + n)).cast(pa.string())
    if name == "数据更新时间":
        secs = (asof - rng.integers(0, 30, n)) * 86400 + rng.integers(0, 86400, n)
        return ts_text(secs)
    if name == "经办人":
        return random_names(rng.bit_generator.random_raw(n).astype(np.uint64))
    words = VOCAB["备注"]
    return pa.array([words[i] or None for i in rng.integers(0, len(words), n)], pa.string())


# -- writing --------------------------------------------------------------------------------------------------

def place_repeats(base: np.ndarray, repeats: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Insert ``repeats`` rows that repeat an earlier row's key (later in the chunk)."""
    m = len(base)
    n = m + repeats
    is_rep = np.zeros(n, dtype=bool)
    if repeats <= 0 or m < 2:
        return base.astype(np.int64), is_rep
    pos = np.sort(rng.choice(np.arange(1, n), size=repeats, replace=False))
    is_rep[pos] = True
    out = np.empty(n, dtype=np.int64)
    out[~is_rep] = base
    nonrep = np.flatnonzero(~is_rep)
    before = pos - np.arange(repeats)
    src = nonrep[np.minimum((rng.random(repeats) * before).astype(np.int64), before - 1)]
    out[pos] = out[src]
    return out, is_rep


def _ordinal_stream(fp: FilePlan, rng: np.random.Generator, seed: int) -> np.ndarray | None:
    """Key ordinals of an update file (re-delivered + new, shuffled); None for a plain initial file."""
    if fp.redelivered == 0:
        return None
    red = affine(np.arange(fp.redelivered), max(fp.known, 1), salt_of(seed, fp.dataset, fp.node, fp.seq, fp.part) % 1_000_003)
    new = np.arange(fp.new_start, fp.new_start + fp.new_keys, dtype=np.int64)
    both = np.concatenate([red, new])
    return both[rng.permutation(len(both))]


def _title_rows(registry: Registry, c: Contract, node: str, day: date, rng: np.random.Generator) -> list[str]:
    n = registry.nodes.get(node)
    org = n.name if n else node
    org = org if org.startswith("广州") else f"广州{org}" if org.startswith("市") else f"广州市{org}"
    rows = [f"{org} {c.title}"]
    k = int(rng.integers(1, 4))
    if k >= 2:
        rows.append(f"导出时间：{day.isoformat()} {int(rng.integers(8, 18)):02d}:{int(rng.integers(0, 60)):02d}:"
                    f"{int(rng.integers(0, 60)):02d}")
    if k >= 3:
        rows.append("数据范围：全量" if rng.random() < 0.5 else "单位：条")
    return rows


def write_file(out_dir: Path, fp: FilePlan, it: ItemPlan, world: World, seed: int, defects: bool,
               on_rows: Callable[[int], None]) -> Delivery:
    registry = world.registry
    model = world.model(fp.dataset)
    rng = np.random.default_rng([seed, salt_of(fp.dataset, fp.node, fp.seq, fp.part) % (1 << 32)])
    ext = EXT[fp.fmt]
    suffix = f"{fp.seq}" if fp.parts == 1 else f"{fp.seq}-{fp.part:02d}"
    rel = f"{fp.node}/{fp.dataset}/{fp.dataset}__{fp.node}__{fp.delivered_on:%Y%m%d}__{suffix}.{ext}"
    path = out_dir / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    asof = day_of(fp.delivered_on) - 1
    counts: dict[str, int] = {}

    if fp.expect == "refuse":
        return _write_refused(path, rel, fp, world, rng, asof, on_rows)

    drift = defects and rng.random() < DEFECT_RATES["schema_drift"]
    cols, notes = columns_for(model, rng, drift)
    header = [col.header for col in cols]
    typed: set[str] = set()
    if fp.fmt == "parquet" and rng.random() < TYPED_PARQUET_RATE:
        typed = {s.name for s in model.specs.values() if s.kind == "number"}
    float_ids = (fp.fmt == "xlsx" and defects and any(s.kind == "ric" for s in model.specs.values())
                 and rng.random() < DEFECT_RATES["excel_float_id"])
    engine = Defects(model, fp.fmt, typed, defects, {col.field for col in cols if col.field})
    writer = _open_writer(path, fp, header, cols, model, typed, registry, rng)

    stream = _ordinal_stream(fp, rng, seed)
    chunks = _split(fp.rows, max(1, math.ceil(fp.rows / CHUNK_ROWS)))
    chunk_reps = _split_like(fp.repeats, chunks, fp.rows)
    consumed = 0
    written = 0
    float_rows = 0
    for size, reps in zip(chunks, chunk_reps):
        m = size - reps
        base = (stream[consumed: consumed + m] if stream is not None
                else np.arange(fp.new_start + consumed, fp.new_start + consumed + m, dtype=np.int64))
        consumed += m
        ords, _ = place_repeats(base, reps, rng)
        rows = model.generate(fp.node, ords + it.key_offset, ords, it.node_index, it.keys, rng, asof, it.last_day - 1)
        values, kinds, c_counts = engine.apply(rows, rng)
        for k, v in c_counts.items():
            counts[k] = counts.get(k, 0) + v
        arrays = [values[col.field] if col.field else extra_values(col.extra, size, written + 1, asof, rng)
                  for col in cols]
        table = pa.Table.from_arrays(arrays, names=[f"c{i}" for i in range(len(cols))])
        if fp.fmt == "csv":
            ragged = np.flatnonzero(kinds == ROW_KINDS.index("ragged_row"))
            writer.write(table, ragged, rng.random(len(ragged)) < 0.5)
        elif fp.fmt == "xlsx":
            numeric = {i for i, col in enumerate(cols) if col.field and model.specs[col.field].kind == "number"}
            as_float = {}
            if float_ids:
                clean = kinds < 0
                any_float = np.zeros(size, dtype=bool)
                for i, col in enumerate(cols):
                    if col.field and model.specs[col.field].kind == "ric":
                        vals = values[col.field]
                        digits = pc.fill_null(pc.match_substring_regex(vals, r"^\d{18}$"), False).to_numpy(zero_copy_only=False)
                        as_float[i] = clean & digits
                        any_float |= as_float[i]
                float_rows += int(any_float.sum())
            writer.write(table, numeric, as_float)
        else:
            writer.write(table)
        written += size
        on_rows(size)
    if float_rows:
        counts["excel_float_id"] = float_rows
    if drift:
        counts["schema_drift"] = fp.rows
    if fp.fmt == "xlsx":
        names = random_names(np.array([salt_of(seed, rel, "footer")], dtype=np.uint64).repeat(2) ^ np.array([1, 2], dtype=np.uint64))
        writer.close([[f"合计：{fp.rows}条"], [f"制表人：{names[0].as_py()}"], [f"审核人：{names[1].as_py()}"]])
    else:
        writer.close()
    return Delivery(path=rel, node=fp.node, dataset=fp.dataset, format=fp.fmt,
                    encoding=fp.encoding if fp.fmt == "csv" else ("utf-8" if fp.fmt == "jsonl" else None),
                    rows=fp.rows, delivered_on=fp.delivered_on, sequence=fp.seq, late=fp.late,
                    defects=dict(sorted(counts.items())), part=fp.part, parts=fp.parts, bom=fp.bom,
                    repeats=fp.repeats, redelivered=fp.redelivered, new_keys=fp.new_keys, columns=header, drift=notes)


def _open_writer(path: Path, fp: FilePlan, header: list[str], cols: list[Column], model: DatasetModel,
                 typed: set[str], registry: Registry, rng: np.random.Generator):
    if fp.fmt == "csv":
        return CsvWriter(path, header, encoding=fp.encoding or "utf-8", bom=fp.bom, quote_all=rng.random() < 0.5)
    if fp.fmt == "jsonl":
        return JsonlWriter(path, header)
    if fp.fmt == "parquet":
        types = []
        for col in cols:
            f = model.c.field(col.field) if col.field else None
            if f is not None and col.field in typed:
                types.append(pa.int64() if f.type == "integer" else pa.decimal128(20 + f.scale, f.scale))
            else:
                types.append(pa.string())
        return ParquetFileWriter(path, header, types)
    return XlsxWriter(path, header, _title_rows(registry, model.c, fp.node, fp.delivered_on, rng),
                      sheet=model.c.title)


def _write_refused(path: Path, rel: str, fp: FilePlan, world: World, rng: np.random.Generator, asof: int,
                   on_rows: Callable[[int], None]) -> Delivery:
    """A file the host dataset must refuse whole: the header (and rows) of another dataset."""
    n = fp.rows
    if fp.foreign and fp.foreign != "__bogus__":
        fm = world.model(fp.foreign)
        node = world.registry.deliverers(fm.c)[0]
        k = np.arange(n, dtype=np.int64)
        rows = fm.generate(node, k, k, 0, n, rng, asof, asof)
        header = [f.title for f in fm.c.fields]
        arrays = [rows.values[f.name] for f in fm.c.fields]
    else:
        header = ["序号", "项目名称", "金额（元）", "备注"]
        arrays = [pa.array(np.arange(1, n + 1)).cast(pa.string()), const("专项资金", n),
                  pa.array((rng.integers(1, 10**6, n)).astype(str)), const("", n)]
    table = pa.Table.from_arrays(arrays, names=[f"c{i}" for i in range(len(header))])
    if fp.fmt == "csv":
        w = CsvWriter(path, header, encoding=fp.encoding or "utf-8", bom=fp.bom)
        w.write(table)
        w.close()
    elif fp.fmt == "jsonl":
        w = JsonlWriter(path, header)
        w.write(table)
        w.close()
    elif fp.fmt == "parquet":
        w = ParquetFileWriter(path, header, [pa.string()] * len(header))
        w.write(table)
        w.close()
    else:
        c = world.registry.contracts[fp.dataset]
        w = XlsxWriter(path, header, _title_rows(world.registry, c, fp.node, fp.delivered_on, rng))
        w.write(table)
        w.close([[f"合计：{n}条"]])
    on_rows(n)
    return Delivery(path=rel, node=fp.node, dataset=fp.dataset, format=fp.fmt,
                    encoding=fp.encoding if fp.fmt == "csv" else ("utf-8" if fp.fmt == "jsonl" else None),
                    rows=n, delivered_on=fp.delivered_on, sequence=fp.seq, late=False,
                    defects={"refused_file": n}, expect="refuse", bom=fp.bom, columns=header,
                    drift=[f"foreign_header:{fp.foreign}"])


# -- entry point ----------------------------------------------------------------------------------------------

def generate(registry: Registry, out_dir: Path, rows: int = 100_000, seed: int = 20261124, *,
             datasets: list[str] | None = None,
             nodes: list[str] | None = None,
             formats: list[str] | None = None,
             defects: bool = True,
             max_rows_per_file: int = 2_000_000,
             key_start: int = 0,
             updates: bool = True,
             progress: Callable[[str, int], None] | None = None) -> Manifest:
    """Write deliveries for every (selected) dataset x delivering node and ``out_dir/manifest.json``.

    ``key_start`` shifts the key ordinals of every dataset: records with serial keys (tickets, events, usage
    records) of a run with ``key_start`` at or past an earlier run's key count are new records, where the same
    seed would give the same ones again (what a day of appends after earlier days needs). Persons and entities
    follow the seed instead: another seed gives other people. ``updates=False`` gives each node one delivery
    (no later update deliveries): one day's files."""
    names = sorted(registry.contracts) if not datasets else list(dict.fromkeys(datasets))
    for d in names:
        if d not in registry.contracts:
            raise RegistryError(f"未知数据集：{d}", hint=did_you_mean(d, set(registry.contracts))
                                or f"已登记的数据集：{', '.join(sorted(registry.contracts))}")
    for n in nodes or []:
        registry.node(n)
    for f in formats or []:
        if f not in EXT:
            raise RegistryError(f"不支持的格式：{f}", hint="可选：csv、xlsx、jsonl、parquet")
    if rows < 1:
        raise RegistryError("行数必须为正数", hint="例如 --rows 100000")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    # plan with provisional models (key plans and capacities need no sizes), then build the shared world
    provisional = build_world(registry, seed, {}, {})
    models = {d: provisional.model(d) for d in names}
    items = plan(registry, models, rows, seed, names, nodes, formats, defects, max_rows_per_file, key_start, updates)
    key_sizes: dict[str, int] = {}
    initial: dict[str, int] = {}
    for it in items:
        key_sizes[it.dataset] = key_sizes.get(it.dataset, 0) + it.keys
        initial[it.dataset] = initial.get(it.dataset, 0) + it.initial_keys
    world = build_world(registry, seed, key_sizes, initial)

    done = 0
    deliveries: list[Delivery] = []
    for it in items:
        c = registry.contracts[it.dataset]
        node = registry.nodes[it.node]
        for fp in it.files:
            desc = f"{c.title}·{node.name} 第{fp.seq}批" + (f"（{fp.part}/{fp.parts}）" if fp.parts > 1 else "")

            def on_rows(k: int, desc: str = desc) -> None:
                nonlocal done
                done += k
                if progress:
                    progress(desc, done)

            deliveries.append(write_file(out_dir, fp, it, world, seed, defects, on_rows))
    manifest = Manifest(deliveries=deliveries, seed=seed, rows_requested=rows, defects_enabled=defects)
    manifest.save(out_dir / "manifest.json")
    return manifest


__all__ = ["DEFECT_RATES", "Delivery", "Manifest", "generate", "generate_with_progress"]


def generate_with_progress(ctx, out_dir: Path, rows: int, seed: int, datasets, formats, defects: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from govlake.progress import console

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task("生成报送文件", total=rows)
        state = {"done": 0}

        def progress(desc: str, done: int) -> None:
            state["done"] = max(state["done"], done)
            bar.update(task, completed=min(state["done"], rows), description=f"生成 {desc}")

        return generate(ctx.registry, out_dir, rows=rows, seed=seed, datasets=datasets, formats=formats,
                        defects=defects, progress=progress)
