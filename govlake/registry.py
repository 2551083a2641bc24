"""The governance registries in catalog/: the 1+11+N nodes, the code lists (GB/T 2260 and others) and the
shared data items with their authoritative source (一数一源).

Registries are cross-checked against the contracts when loaded, so a contract naming an unknown node or
code list fails at load time with the file that is wrong, not in the middle of a run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from govlake.contracts import Contract, load_contracts
from govlake.errors import ConfigError, RegistryError, did_you_mean

DISTRICTS_TOKEN = "districts"


@dataclass(frozen=True)
class Node:
    code: str
    name: str
    kind: str  # center | district | department
    district: str | None = None

    @property
    def label(self) -> str:
        return f"{self.name}（{self.code}）"


@dataclass(frozen=True)
class Code:
    code: str
    label: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class CodeList:
    name: str
    title: str
    codes: tuple[Code, ...]

    def lookup(self) -> dict[str, str]:
        """Every spelling (code, label, alias) -> code."""
        out: dict[str, str] = {}
        for c in self.codes:
            for s in (c.code, c.label, *c.aliases):
                out[s] = c.code
        return out

    @property
    def values(self) -> list[str]:
        return [c.code for c in self.codes]


@dataclass(frozen=True)
class ItemSource:
    dataset: str
    key: str
    field: str


@dataclass(frozen=True)
class DataItem:
    """A data item several nodes deliver (一数多源) and the rule naming its one authoritative source."""

    item: str
    title: str
    subject: str
    sources: tuple[ItemSource, ...]
    basis: str = ""
    authority: str | None = None  # a node code, or None when decided per subject key
    authority_by_key_prefix: tuple[tuple[str, str], ...] = ()
    authority_default: str | None = None

    @property
    def has_authority(self) -> bool:
        return bool(self.authority or self.authority_default)

    def authority_for(self, key: str) -> str | None:
        for prefix, node in self.authority_by_key_prefix:
            if key.startswith(prefix):
                return node
        return self.authority or self.authority_default


@dataclass(frozen=True)
class Duty:
    """One mandated function (三定职责) of a node and the data it produces or requires."""

    id: str
    node: str  # a node code, or "districts" for every district node
    title: str
    basis: str = ""
    produces: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()


@dataclass(frozen=True)
class Registry:
    nodes: dict[str, Node]
    code_lists: dict[str, CodeList]
    contracts: dict[str, Contract]
    data_items: dict[str, DataItem] = field(default_factory=dict)
    duties: dict[str, Duty] = field(default_factory=dict)

    def duty_nodes(self, duty: Duty) -> list[str]:
        return [n.code for n in self.districts] if duty.node == DISTRICTS_TOKEN else [duty.node]

    @property
    def districts(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.kind == "district"]

    @property
    def departments(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.kind == "department"]

    def node(self, code: str) -> Node:
        if code not in self.nodes:
            raise RegistryError(
                f"未知节点：{code}",
                hint=did_you_mean(code, set(self.nodes)) or "查看 catalog/nodes.yaml 中登记的 1+11+N 节点",
            )
        return self.nodes[code]

    def deliverers(self, contract: Contract) -> list[str]:
        """Node codes allowed to deliver a dataset ('districts' expands to the 11 district nodes)."""
        out: list[str] = []
        for code in contract.delivered_by:
            out.extend(n.code for n in self.districts) if code == DISTRICTS_TOKEN else out.append(code)
        return out

    def datasets_of(self, node: str) -> list[Contract]:
        return [c for c in self.contracts.values() if node in self.deliverers(c)]

    def code_list(self, name: str) -> CodeList:
        if name not in self.code_lists:
            raise RegistryError(f"未知代码表：{name}", hint=did_you_mean(name, set(self.code_lists)))
        return self.code_lists[name]


def _read(path: Path) -> dict:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"无法读取登记表：{exc}", where=str(path)) from None


def _load_nodes(path: Path) -> dict[str, Node]:
    doc = _read(path)
    nodes: dict[str, Node] = {}
    for section, kind in (("center", "center"), ("districts", "district"), ("departments", "department")):
        for i, raw in enumerate(doc.get(section) or []):
            if not isinstance(raw, dict) or "code" not in raw or "name" not in raw:
                raise ConfigError("节点必须有 code 与 name", where=f"{path} → {section}.{i}")
            code = str(raw["code"])
            if code in nodes:
                raise ConfigError(f"节点代码重复：{code}", where=f"{path} → {section}.{i}")
            nodes[code] = Node(code=code, name=raw["name"], kind=kind, district=raw.get("district"))
    return nodes


def _load_code_lists(folder: Path) -> dict[str, CodeList]:
    out: dict[str, CodeList] = {}
    for path in sorted(folder.glob("*.yaml")):
        doc = _read(path)
        codes = tuple(
            Code(code=str(c["code"]), label=str(c["label"]), aliases=tuple(str(a) for a in c.get("aliases", [])))
            for c in doc.get("codes", [])
        )
        out[doc.get("name", path.stem)] = CodeList(name=doc.get("name", path.stem), title=doc.get("title", ""), codes=codes)
    return out


@lru_cache(maxsize=4)
def _load_registry(catalog_dir: str, schemas_dir: str) -> Registry:
    cat = Path(catalog_dir)
    nodes = _load_nodes(cat / "nodes.yaml")
    code_lists = _load_code_lists(cat / "codes")
    contracts = load_contracts(Path(schemas_dir))
    for c in contracts.values():
        where = str(c.path)
        for code in (c.owner, *c.delivered_by):
            if code != DISTRICTS_TOKEN and code not in nodes:
                raise ConfigError(
                    f"契约引用了未登记的节点 {code}", where=where, hint=did_you_mean(code, set(nodes)) or "先在 catalog/nodes.yaml 登记"
                )
        for f in c.fields:
            if f.codes and f.codes not in code_lists:
                raise ConfigError(
                    f"字段 {f.name} 引用了不存在的代码表 {f.codes}",
                    where=f"{where} → fields.{f.name}.codes",
                    hint=did_you_mean(f.codes, set(code_lists)) or "在 catalog/codes/ 下新增代码表",
                )
    items = _load_data_items(cat / "data_items.yaml", nodes, contracts)
    duties = _load_duties(cat / "duties.yaml", nodes, contracts)
    return Registry(nodes=nodes, code_lists=code_lists, contracts=contracts, data_items=items, duties=duties)


def _load_duties(path: Path, nodes: dict[str, Node], contracts: dict[str, Contract]) -> dict[str, Duty]:
    """Duties by id; a contract naming an unknown duty, or a duty of an unknown node, fails at load time.
    Datasets a duty produces but nobody catalogued are allowed: that is a 缺位 finding, not a typo."""
    if not path.exists():
        return {}
    out: dict[str, Duty] = {}
    for i, raw in enumerate(_read(path).get("duties") or []):
        where = f"{path} → duties.{i}"
        missing = {"id", "node", "title"} - set(raw)
        if missing:
            raise ConfigError(f"职责缺少 {sorted(missing)}", where=where, hint="每项职责需要 id、node、title")
        node = str(raw["node"])
        if node != DISTRICTS_TOKEN and node not in nodes:
            raise ConfigError(f"职责 {raw['id']} 的节点 {node} 未登记", where=where, hint=did_you_mean(node, set(nodes)))
        if raw["id"] in out:
            raise ConfigError(f"职责 id 重复：{raw['id']}", where=where)
        out[raw["id"]] = Duty(raw["id"], node, raw["title"], raw.get("basis", ""),
                              tuple(raw.get("produces") or ()), tuple(raw.get("requires") or ()))
    for c in contracts.values():
        for d in c.duties:
            if out and d not in out:
                raise ConfigError(f"契约引用了未登记的职责 {d}", where=f"{c.path} → duties",
                                  hint=did_you_mean(d, set(out)) or f"在 {path.name} 中登记该职责")
    return out


def _load_data_items(path: Path, nodes: dict[str, Node], contracts: dict[str, Contract]) -> dict[str, DataItem]:
    if not path.exists():
        return {}
    doc = _read(path)
    subjects = doc.get("subjects") or {}
    out: dict[str, DataItem] = {}
    for i, raw in enumerate(doc.get("items") or []):
        where = f"{path} → items.{i}"
        missing = {"item", "title", "subject", "sources"} - set(raw)
        if missing:
            raise ConfigError(f"数据项缺少 {sorted(missing)}", where=where)
        if raw["subject"] not in subjects:
            raise ConfigError(f"未知主体 {raw['subject']}", where=where, hint=did_you_mean(raw["subject"], set(subjects)))
        sources = []
        for j, src in enumerate(raw["sources"]):
            ds = src.get("dataset")
            if ds not in contracts:
                raise ConfigError(f"未知数据集 {ds}", where=f"{where}.sources.{j}", hint=did_you_mean(str(ds), set(contracts)))
            names = contracts[ds].field_names
            for k in ("key", "field"):
                if src.get(k) not in names:
                    raise ConfigError(f"数据集 {ds} 没有字段 {src.get(k)}", where=f"{where}.sources.{j}.{k}",
                                      hint=did_you_mean(str(src.get(k)), names))
            sources.append(ItemSource(ds, src["key"], src["field"]))
        auth = raw.get("authority")
        by_prefix: tuple[tuple[str, str], ...] = ()
        default = None
        if isinstance(auth, dict):
            by_prefix = tuple((str(k), str(v)) for k, v in (auth.get("by_key_prefix") or {}).items())
            default, auth = auth.get("default"), None
        for code in [auth, default, *(v for _, v in by_prefix)]:
            if code is not None and code not in nodes:
                raise ConfigError(f"权威来源 {code} 不是已登记的节点", where=f"{where}.authority", hint=did_you_mean(code, set(nodes)))
        out[raw["item"]] = DataItem(raw["item"], raw["title"], raw["subject"], tuple(sources), raw.get("basis", ""),
                                    auth, by_prefix, default)
    return out


def load_registry(catalog_dir: Path, schemas_dir: Path) -> Registry:
    return _load_registry(str(catalog_dir), str(schemas_dir))
