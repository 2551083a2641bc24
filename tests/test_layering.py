"""The layering of the code base, read from the source with ``ast`` (nothing is imported).

- the library (``govlake/*.py``, ``govlake/engine/``) never imports the pipeline (``govlake.jobs``), the
  consumers (``govlake.access``) or the dev tooling (``govlake.devkit``);
- the pipeline never imports the consumers or the dev tooling;
- no import cycle among govlake modules, counting imports inside functions too (a lazy import that closes a
  cycle only hides it). Imports under ``if TYPE_CHECKING:`` never run and are not counted;
- no job, page or DAG names a declared lake table by a string literal: they import it from govlake/tables.py.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from govlake.tables import TABLES

ROOT = Path(__file__).resolve().parent.parent
LIBRARY_EXCLUDED = ("govlake.access", "govlake.devkit", "govlake.cli", "govlake.jobs")
CONSUMERS_AND_TOOLING = ("govlake.access", "govlake.devkit")


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported govlake module
    path: Path
    line: int

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}: {self.source} -> {self.target}"


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for the library and the pipeline (``jobs/`` is ``govlake.jobs``)."""
    out: dict[str, Path] = {}
    for folder, package in ((ROOT / "govlake", ("govlake",)), (ROOT / "jobs", ("govlake", "jobs"))):
        for path in sorted(folder.rglob("*.py")):
            parts = [*package, *path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


MODULES = module_files()


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


class _Collector(ast.NodeVisitor):
    """Every import statement that can run: at module level, in functions and classes alike."""

    def __init__(self, module: str, is_package: bool) -> None:
        self.package = module if is_package else module.rpartition(".")[0]
        self.found: list[tuple[str, int]] = []

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.found += [(a.name, node.lineno) for a in node.names]

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package.split(".")[: len(self.package.split(".")) - node.level + 1]
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        # ``from pkg import mod`` imports the module pkg.mod; ``from mod import name`` imports mod.
        for a in node.names:
            sub = f"{module}.{a.name}"
            self.found.append((sub if sub in MODULES else module, node.lineno))


def _resolve(name: str) -> str | None:
    """The govlake module an imported dotted name lives in (None for third-party modules)."""
    while name not in MODULES:
        if "." not in name:
            return None
        name = name.rpartition(".")[0]
    return name


def imports() -> list[Import]:
    out: list[Import] = []
    for module, path in MODULES.items():
        collector = _Collector(module, path.name == "__init__.py")
        collector.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        for name, line in collector.found:
            target = _resolve(name)
            if target is not None and target != module:
                out.append(Import(module, target, path, line))
    return sorted(set(out), key=lambda i: (i.source, i.target, i.line))


IMPORTS = imports()


def test_the_scan_sees_the_code_base() -> None:
    """The checks below are only as good as the scan: it must see jobs, library and lazy imports."""
    assert {"govlake.lake", "govlake.jobs.ingest.bronze", "govlake.jobs.pipeline", "govlake.access.sql"} <= set(MODULES)
    lazy = [i for i in IMPORTS if i.source == "govlake.context" and i.target == "govlake.lineage_events"]
    assert lazy, "the lazy import of govlake.lineage_events inside Context.lineage was not found"


def test_the_library_never_imports_the_pipeline_consumers_or_tooling() -> None:
    bad = [str(i) for i in IMPORTS if not _within(i.source, LIBRARY_EXCLUDED)
           and _within(i.target, ("govlake.jobs", *CONSUMERS_AND_TOOLING))]
    assert not bad, "library modules import govlake.jobs / access / devkit:\n" + "\n".join(bad)


def test_the_pipeline_never_imports_consumers_or_tooling() -> None:
    bad = [str(i) for i in IMPORTS if _within(i.source, ("govlake.jobs",)) and _within(i.target, CONSUMERS_AND_TOOLING)]
    assert not bad, "pipeline modules import govlake.access / govlake.devkit:\n" + "\n".join(bad)


def find_cycle(edges: list[Import]) -> list[Import]:
    """One import cycle as the chain of imports that closes it, or [] (depth-first, three colours)."""
    graph: dict[str, list[Import]] = {}
    for e in sorted(edges, key=lambda e: (e.source, e.target, e.line)):
        graph.setdefault(e.source, []).append(e)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[Import] = []

    def visit(node: str) -> list[Import]:
        state[node] = 1
        for e in graph.get(node, []):
            if state.get(e.target) == 1:
                start = next(i for i, p in enumerate(path) if p.source == e.target) if e.target != node else len(path)
                return path[start:] + [e]
            if e.target not in state:
                path.append(e)
                found = visit(e.target)
                if found:
                    return found
                path.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


def test_find_cycle_reports_the_chain() -> None:
    p = ROOT / "govlake" / "lake.py"
    chain = find_cycle([Import("a", "b", p, 1), Import("b", "c", p, 2), Import("c", "a", p, 3), Import("c", "d", p, 4)])
    assert [(i.source, i.target) for i in chain] == [("a", "b"), ("b", "c"), ("c", "a")]
    assert find_cycle([Import("a", "b", p, 1), Import("b", "c", p, 2)]) == []


def test_no_import_cycles_even_through_imports_inside_functions() -> None:
    cycle = find_cycle(IMPORTS)
    assert not cycle, "import cycle (lazy imports included):\n" + "\n".join(str(i) for i in cycle)


# -- table names ------------------------------------------------------------------------------------------

SCANNED = ("govlake", "jobs", "dags")
ALLOWED = {
    # The keyed audit digest's purpose string happens to read like the table; it must never change with it.
    ("govlake/access/sql.py", "AUDIT_PURPOSE"),
}


def literal_table_names(source: str, rel: str) -> list[tuple[int, str]]:
    """(line, value) of every string literal in ``source`` that is a declared table's name or ``layer.name``."""
    names = {t.name for t in TABLES.values()} | set(TABLES)
    tree = ast.parse(source, filename=rel)
    allowed_targets = {target for file, target in ALLOWED if file == rel}
    skip = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id in allowed_targets for t in node.targets)}
    return sorted((node.lineno, node.value) for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names
                  and id(node) not in skip)


def test_no_table_name_literals_outside_the_declarations() -> None:
    found = []
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel == "govlake/tables.py":
                continue
            found += [f"{rel}:{line}: {value!r}" for line, value in literal_table_names(path.read_text(encoding="utf-8"), rel)]
    assert not found, "table names written as literals (import the declaration from govlake.tables):\n" + "\n".join(found)


def test_the_literal_scan_finds_names_and_keeps_prose() -> None:
    source = ('X = ctx.lake.read("meta", "ingest_batches")\nY = "gold.quality_scores"\n'
              'Z = f"gold.{name}"\nW = "见 meta.ingest_batches 中的记录"\nAUDIT_PURPOSE = "stage_builds"\n')
    assert literal_table_names(source, "jobs/x.py") == [(1, "ingest_batches"), (2, "gold.quality_scores"), (5, "stage_builds")]
    assert literal_table_names(source, "govlake/access/sql.py") == [(1, "ingest_batches"), (2, "gold.quality_scores")]
