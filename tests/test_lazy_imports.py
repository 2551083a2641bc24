"""Names imported for type checking only are imported again where the code runs (issue 14, point 7).

A no-op ``govlake run`` loads neither pyarrow nor NumPy: the modules on its path import them inside the
functions that compute with them, and under ``if TYPE_CHECKING:`` for annotations. A function added later
that uses ``pa.`` without its own import only fails when it runs (a merge did exactly that: ``NameError:
name 'pa' is not defined`` in the first run with work). This reads every module with ``ast`` and names the
file and line of such a use.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted([*ROOT.glob("govlake/**/*.py"), *ROOT.glob("jobs/**/*.py")])


def _bound(nodes: list[ast.stmt]) -> set[str]:
    out: set[str] = set()
    for node in nodes:
        for n in ast.walk(node):
            if isinstance(n, (ast.Import, ast.ImportFrom)):
                out |= {a.asname or a.name.split(".")[0] for a in n.names}
    return out


def _type_checking_only(tree: ast.Module) -> set[str]:
    """Names imported under ``if TYPE_CHECKING:`` at module level and not imported at module level."""
    guarded: set[str] = set()
    top: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            guarded |= _bound(node.body)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            top |= _bound([node])
    return guarded - top


class _RuntimeUses(ast.NodeVisitor):
    """Loads of ``names`` that run (annotations and TYPE_CHECKING blocks excluded) outside any function
    that imports them."""

    def __init__(self, names: set[str]) -> None:
        self.names = names
        self.scopes: list[set[str]] = []
        self.found: list[tuple[int, str]] = []

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for expr in [*node.decorator_list, *node.args.defaults, *(d for d in node.args.kw_defaults if d)]:
            self.visit(expr)
        self.scopes.append(_bound(node.body))
        for stmt in node.body:
            self.visit(stmt)
        self.scopes.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_If(self, node: ast.If) -> None:
        if "TYPE_CHECKING" in ast.unparse(node.test):
            for stmt in node.orelse:
                self.visit(stmt)
            return
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:  # the annotation is a string (future annotations)
        if node.value is not None:
            self.visit(node.value)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in self.names and isinstance(node.ctx, ast.Load) and not any(node.id in s for s in self.scopes):
            self.found.append((node.lineno, node.id))


def test_names_imported_for_type_checking_are_imported_where_they_run() -> None:
    found = []
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = _type_checking_only(tree)
        if not names:
            continue
        uses = _RuntimeUses(names)
        uses.visit(tree)
        found += [f"{path.relative_to(ROOT)}:{line}: {name}" for line, name in uses.found]
    assert not found, "used at run time but imported only under TYPE_CHECKING:\n" + "\n".join(found)
