"""The governance registries in catalog/: the 1+11+N nodes and the code lists (GB/T 2260 and others).

Registries are cross-checked against the contracts when loaded, so a contract naming an unknown node or
code list fails at load time with the file that is wrong, not in the middle of a run.
"""

from __future__ import annotations

from dataclasses import dataclass
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
class Registry:
    nodes: dict[str, Node]
    code_lists: dict[str, CodeList]
    contracts: dict[str, Contract]

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
    return Registry(nodes=nodes, code_lists=code_lists, contracts=contracts)


def load_registry(catalog_dir: Path, schemas_dir: Path) -> Registry:
    return _load_registry(str(catalog_dir), str(schemas_dir))
