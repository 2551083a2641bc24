"""Dataset contracts: one YAML per dataset in schemas/datasets/, validated by schemas/_meta/contract.schema.json.

Contracts are loaded into frozen, typed objects so that jobs never read raw YAML. The JSON Schema and these
dataclasses are the two halves of one definition: govlake.declarations validates a file against the first and
builds the second from it, so a bad key is reported with its file and dotted path (as dbt does), plus a
"did you mean" where one helps, and there is no hand-written loader repeating the shape.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from govlake.declarations import load, load_yaml
from govlake.errors import ConfigError, RegistryError, did_you_mean

_load_yaml = load_yaml  # older name, still imported by a few jobs


@dataclass(frozen=True)
class Field:
    name: str
    title: str
    type: str
    description: str = ""
    scale: int = 0
    aliases: tuple[str, ...] = ()
    required: bool = False
    standardize: tuple[str, ...] = ()
    check: str | None = None
    codes: str | None = None
    min: float | None = None
    max: float | None = None
    min_date: str | None = None
    not_future: bool = False
    pattern: str | None = None
    pii: str = "none"
    mask: str | None = None
    pseudonymize: bool = False
    grade: int = 1

    @property
    def is_pii(self) -> bool:
        return self.pii != "none"

    @property
    def hidden(self) -> bool:
        """Masked PII: the raw value never leaves bronze (silver keeps ``<name>_masked``, maybe a pid)."""
        return self.is_pii and self.mask is not None

    @property
    def headers(self) -> tuple[str, ...]:
        """Every source header that means this field: title, aliases and the field name itself."""
        return (self.title, *self.aliases, self.name)


@dataclass(frozen=True)
class Catalog:
    category: str
    code: str
    summary: str
    format: str
    share: str
    open: str
    update_cycle: str
    published_on: str
    base: str | None = None
    theme: str | None = None
    share_condition: str | None = None
    share_basis: str | None = None  # the stated basis of 不予共享, cited when a request is refused


# Days per declared 更新周期 (GB/T 21063 catalogue update cycles); timeliness and the generator use it.
CYCLE_DAYS = {"实时": 1, "每日": 1, "每周": 7, "每月": 30, "每季度": 91, "每半年": 182, "每年": 365}


@dataclass(frozen=True)
class Contract:
    dataset: str
    version: int
    title: str
    owner: str
    delivered_by: tuple[str, ...]
    catalog: Catalog
    key: tuple[str, ...]
    fields: tuple[Field, ...]
    order_by: tuple[str, ...] = ()
    duties: tuple[str, ...] = ()
    path: Path | None = None

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    @property
    def key_fields(self) -> list[Field]:
        return [self.field(k) for k in self.key]

    def has_pid(self, f: Field) -> bool:
        """Whether silver keeps an HMAC pseudonym (``<name>_pid``) of this masked PII field: when the
        contract asks for one, or the field is part of the business key (rows must still be matched)."""
        return f.hidden and (f.pseudonymize or f.name in self.key)

    def header_map(self) -> dict[str, str]:
        """Normalized source header -> field name."""
        out: dict[str, str] = {}
        for f in self.fields:
            for h in f.headers:
                out[normalize_header(h)] = f.name
        return out


_FULLWIDTH = str.maketrans({"（": "(", "）": ")", "：": ":", "　": " "})


def normalize_header(h: str) -> str:
    """Headers are matched after NFKC, trimming, dropping spaces and unifying brackets."""
    h = unicodedata.normalize("NFKC", str(h)).translate(_FULLWIDTH)
    return re.sub(r"\s+", "", h).lower()


def load_contract(path: Path, schemas_dir: Path) -> Contract:
    """Load one contract file: validated by schemas/_meta/contract.schema.json and built into a Contract by
    the one declaration mechanism (govlake.declarations), then the checks a schema cannot express."""
    c = load(Contract, path, "contract", schemas_dir, path=path)
    _check_contract(c, path)
    return c


def _check_contract(c: Contract, path: Path) -> None:
    """What JSON Schema cannot say: the file is named after the dataset, field names are unique, key and
    order_by name fields, and no source header means two fields."""
    if c.dataset != path.stem:
        raise ConfigError(
            f"契约文件名与 dataset 不一致：{c.dataset}",
            where=str(path),
            hint=f"将文件重命名为 {c.dataset}.yaml，或把 dataset 改为 {path.stem}",
        )
    names = c.field_names
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ConfigError(f"字段重复：{sorted(dupes)}", where=str(path), hint="每个字段名只能出现一次")
    for ref_kind in ("key", "order_by"):
        for ref in getattr(c, ref_kind):
            if ref not in names:
                raise ConfigError(
                    f"{ref_kind} 引用了不存在的字段 {ref}",
                    where=f"{path} → {ref_kind}",
                    hint=did_you_mean(ref, names) or f"可用字段：{', '.join(names)}",
                )
    seen: dict[str, str] = {}
    for f in c.fields:
        for h in f.headers:
            n = normalize_header(h)
            if n in seen and seen[n] != f.name:
                raise ConfigError(
                    f"表头别名 “{h}” 同时指向字段 {seen[n]} 和 {f.name}",
                    where=f"{path} → fields.{f.name}.aliases",
                    hint="一个来源表头只能对应一个字段",
                )
            seen[n] = f.name


@lru_cache(maxsize=4)
def _load_all(schemas_dir: str) -> dict[str, Contract]:
    base = Path(schemas_dir)
    out: dict[str, Contract] = {}
    for path in sorted((base / "datasets").glob("*.yaml")):
        c = load_contract(path, base)
        out[c.dataset] = c
    return out


def load_contracts(schemas_dir: Path) -> dict[str, Contract]:
    """All dataset contracts by name (cached per directory)."""
    return _load_all(str(schemas_dir))


def get_contract(schemas_dir: Path, dataset: str) -> Contract:
    contracts = load_contracts(schemas_dir)
    if dataset not in contracts:
        raise RegistryError(
            f"未知数据集：{dataset}",
            hint=did_you_mean(dataset, set(contracts)) or f"已登记的数据集：{', '.join(sorted(contracts))}",
        )
    return contracts[dataset]
