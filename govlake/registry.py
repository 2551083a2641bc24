"""The governance registries in catalog/: the 1+11+N nodes, the code lists (GB/T 2260 and others) and the
shared data items with their authoritative source (一数一源).

Each registry file is validated by its JSON Schema (schemas/_meta/<kind>.schema.json) and built into these
dataclasses by govlake.declarations, the mechanism contracts and gold models use. The registries are then
cross-checked against the contracts, so a contract naming an unknown node or code list fails at load time
with the file that is wrong, not in the middle of a run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from govlake.contracts import Contract, load_contracts
from govlake.declarations import build, load, read
from govlake.errors import ConfigError, RegistryError, did_you_mean

DISTRICTS_TOKEN = "districts"


@dataclass(frozen=True)
class Node:
    code: str
    name: str
    kind: str  # center | district | department: the section of nodes.yaml it is listed in
    district: str | None = None
    short: str | None = None

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

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "DataItem":
        """``authority`` is a node code, or ``{by_key_prefix: {prefix: node}, default: node}``."""
        auth = raw.get("authority")
        if not isinstance(auth, dict):
            return build(cls, raw)
        prefixes = tuple((str(k), str(v)) for k, v in (auth.get("by_key_prefix") or {}).items())
        return build(cls, raw, authority=None, authority_by_key_prefix=prefixes, authority_default=auth.get("default"))

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
class City:
    """The city this deployment serves (``city:`` in nodes.yaml): a registry setting, so that the district
    standardization, the district check and the generator name no city in code."""

    code: str  # GB/T 2260, e.g. 440100
    name: str  # as written in addresses, e.g. 广州市
    districts: str  # the code list of its district-level divisions, e.g. gb2260_guangzhou


@dataclass(frozen=True)
class Registry:
    nodes: dict[str, Node]
    code_lists: dict[str, CodeList]
    contracts: dict[str, Contract]
    data_items: dict[str, DataItem] = field(default_factory=dict)
    duties: dict[str, Duty] = field(default_factory=dict)
    city: City | None = None

    @property
    def district_codes(self) -> CodeList:
        """The code list of the city's districts (GB/T 2260), as nodes.yaml's ``city.districts`` names it."""
        if self.city is None:
            raise RegistryError("登记表未设置所服务的城市", hint="在 catalog/nodes.yaml 中设置 city（code、name、districts）")
        return self.code_list(self.city.districts)

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


NODE_SECTIONS = (("center", "center"), ("districts", "district"), ("departments", "department"))


def _load_nodes(path: Path, schemas_dir: Path) -> dict[str, Node]:
    doc = read(path, "nodes", schemas_dir)
    nodes: dict[str, Node] = {}
    for section, kind in NODE_SECTIONS:
        for i, raw in enumerate(doc[section]):
            node = build(Node, raw, kind=kind)
            if node.code in nodes:
                raise ConfigError(f"节点代码重复：{node.code}", where=f"{path} → {section}.{i}.code",
                                  hint="每个节点代码只能登记一次")
            nodes[node.code] = node
    return nodes


def _load_code_lists(folder: Path, schemas_dir: Path) -> dict[str, CodeList]:
    out: dict[str, CodeList] = {}
    for path in sorted(folder.glob("*.yaml")):
        cl = load(CodeList, path, "codes", schemas_dir)
        if cl.name != path.stem:
            raise ConfigError(f"代码表文件名与 name 不一致：{cl.name}", where=f"{path} → name",
                              hint=f"将文件重命名为 {cl.name}.yaml，或把 name 改为 {path.stem}")
        out[cl.name] = cl
    return out


@lru_cache(maxsize=4)
def _load_registry(catalog_dir: str, schemas_dir: str) -> Registry:
    cat, schemas = Path(catalog_dir), Path(schemas_dir)
    nodes = _load_nodes(cat / "nodes.yaml", schemas)
    code_lists = _load_code_lists(cat / "codes", schemas)
    city = _load_city(cat / "nodes.yaml", schemas, code_lists)
    contracts = load_contracts(schemas)
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
    items = _load_data_items(cat / "data_items.yaml", schemas, nodes, contracts)
    duties = _load_duties(cat / "duties.yaml", schemas, nodes, contracts)
    return Registry(nodes=nodes, code_lists=code_lists, contracts=contracts, data_items=items, duties=duties, city=city)


def _load_city(path: Path, schemas_dir: Path, code_lists: dict[str, CodeList]) -> City:
    city = build(City, read(path, "nodes", schemas_dir)["city"])
    if city.districts not in code_lists:
        raise ConfigError(f"city.districts 引用了不存在的代码表 {city.districts}", where=f"{path} → city.districts",
                          hint=did_you_mean(city.districts, set(code_lists)) or "在 catalog/codes/ 下新增该城市的区划代码表")
    return city


def _load_duties(path: Path, schemas_dir: Path, nodes: dict[str, Node],
                 contracts: dict[str, Contract]) -> dict[str, Duty]:
    """Duties by id; a contract naming an unknown duty, or a duty of an unknown node, fails at load time.
    Datasets a duty produces but nobody catalogued are allowed: that is a 缺位 finding, not a typo."""
    if not path.exists():
        return {}
    out: dict[str, Duty] = {}
    for i, raw in enumerate(read(path, "duties", schemas_dir)["duties"]):
        where = f"{path} → duties.{i}"
        duty = build(Duty, raw)
        if duty.node != DISTRICTS_TOKEN and duty.node not in nodes:
            raise ConfigError(f"职责 {duty.id} 的节点 {duty.node} 未登记", where=f"{where}.node",
                              hint=did_you_mean(duty.node, set(nodes)) or "先在 catalog/nodes.yaml 登记该节点")
        if duty.id in out:
            raise ConfigError(f"职责 id 重复：{duty.id}", where=f"{where}.id", hint="每项职责的 id 只能出现一次")
        out[duty.id] = duty
    for c in contracts.values():
        for d in c.duties:
            if out and d not in out:
                raise ConfigError(f"契约引用了未登记的职责 {d}", where=f"{c.path} → duties",
                                  hint=did_you_mean(d, set(out)) or f"在 {path.name} 中登记该职责")
    return out


def _load_data_items(path: Path, schemas_dir: Path, nodes: dict[str, Node],
                     contracts: dict[str, Contract]) -> dict[str, DataItem]:
    if not path.exists():
        return {}
    doc = read(path, "data_items", schemas_dir)
    subjects = doc["subjects"]
    out: dict[str, DataItem] = {}
    for i, raw in enumerate(doc["items"]):
        where = f"{path} → items.{i}"
        item = DataItem.from_dict(raw)
        if item.subject not in subjects:
            raise ConfigError(f"未知主体 {item.subject}", where=f"{where}.subject",
                              hint=did_you_mean(item.subject, set(subjects)) or f"在 subjects 中登记：{', '.join(subjects)}")
        for j, src in enumerate(item.sources):
            if src.dataset not in contracts:
                raise ConfigError(f"未知数据集 {src.dataset}", where=f"{where}.sources.{j}.dataset",
                                  hint=did_you_mean(src.dataset, set(contracts)))
            names = contracts[src.dataset].field_names
            for k in ("key", "field"):
                if getattr(src, k) not in names:
                    raise ConfigError(f"数据集 {src.dataset} 没有字段 {getattr(src, k)}", where=f"{where}.sources.{j}.{k}",
                                      hint=did_you_mean(getattr(src, k), names))
        for code in [item.authority, item.authority_default, *(v for _, v in item.authority_by_key_prefix)]:
            if code is not None and code not in nodes:
                raise ConfigError(f"权威来源 {code} 不是已登记的节点", where=f"{where}.authority",
                                  hint=did_you_mean(code, set(nodes)) or "先在 catalog/nodes.yaml 登记该节点")
        if item.item in out:
            raise ConfigError(f"数据项重复：{item.item}", where=f"{where}.item", hint="每个数据项只能登记一次")
        out[item.item] = item
    return out


def load_registry(catalog_dir: Path, schemas_dir: Path) -> Registry:
    return _load_registry(str(catalog_dir), str(schemas_dir))
