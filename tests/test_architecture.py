"""The shape of editor/: only the state writer writes job rows, the import graph has no cycle, and nothing hides
an import of the project's own modules inside a function or behind TYPE_CHECKING (where a cycle would stay
invisible). Read from the source with ast, so it needs no services."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OWN_PACKAGES = ("editor", "fashionsite")
EXCLUDED = ("migrations",)
# Django's documented hook: signal receivers load in AppConfig.ready(), once the app registry (and so the models
# they import) is ready. Importing editor.signals at the top of apps.py would load models too early.
ALLOWED_HIDDEN = {"editor/apps.py: function-level import of editor.signals"}


def module_files(package_dir: Path) -> dict[str, Path]:
    """Every module of the package, by dotted name (a package by its own name, not `.__init__`)."""
    modules: dict[str, Path] = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = path.relative_to(package_dir.parent).with_suffix("").parts
        if any(part in EXCLUDED for part in parts):
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_names(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """Dotted names an import statement can bind: the module itself and, for `from x import y`, `x.y`."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        anchor = module.split(".") if is_package else module.split(".")[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join([*anchor, base] if base else anchor)
    return [base] + [f"{base}.{alias.name}" for alias in node.names]


def _own(name: str) -> bool:
    return name.split(".")[0] in OWN_PACKAGES


class _Walker(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool, modules: set[str]) -> None:
        self.module, self.is_package, self.modules = module, is_package, modules
        self.imported: list[str] = []
        self.hidden: list[tuple[int, str, str]] = []  # (line, where, imported name)
        self._depth = 0
        self._type_checking = 0

    def _visit_scope(self, node: ast.AST) -> None:
        self._depth += 1
        self.generic_visit(node)
        self._depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _visit_scope

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            self._type_checking += 1
            for child in node.body:
                self.visit(child)
            self._type_checking -= 1
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def _import(self, node: ast.Import | ast.ImportFrom) -> None:
        names = [n for n in _imported_names(node, self.module, self.is_package) if _own(n)]
        if not names:
            return
        known = [n for n in names if n in self.modules]
        shown = max(known, key=len) if known else names[0]
        # Every import counts for cycles, hidden or not: hiding one only defers the cycle to run time.
        self.imported.extend(names)
        if self._depth:
            self.hidden.append((node.lineno, "function-level", shown))
        elif self._type_checking:
            self.hidden.append((node.lineno, "TYPE_CHECKING", shown))

    visit_Import = visit_ImportFrom = _import


def import_graph(package_dir: Path) -> tuple[dict[str, set[str]], list[str]]:
    """(module -> the package's modules it imports, hidden imports of own modules)."""
    modules = module_files(package_dir)
    graph: dict[str, set[str]] = {}
    hidden: list[str] = []
    for name, path in modules.items():
        walker = _Walker(name, is_package=path.name == "__init__.py", modules=set(modules))
        walker.visit(ast.parse(path.read_text(), filename=str(path)))
        graph[name] = {target for target in walker.imported if target in modules and target != name}
        rel = path.relative_to(package_dir.parent)
        hidden += [
            f"{rel}:{line}: {where} import of {target}"
            for line, where, target in walker.hidden
            if f"{rel}: {where} import of {target}" not in ALLOWED_HIDDEN
        ]
    return graph, hidden


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def problems(package_dir: Path) -> list[str]:
    graph, hidden = import_graph(package_dir)
    return hidden + [f"import cycle: {' <-> '.join(group)}" for group in find_cycles(graph)]


WRITES = {"update", "create", "delete", "bulk_create", "bulk_update", "get_or_create", "update_or_create"}
STATE_WRITER = "editor/services/job_state.py"


def job_row_writes(package_dir: Path) -> list[str]:
    """Calls like `EditJob.objects....update(...)` outside the state writer."""
    found: list[str] = []
    for path in module_files(package_dir).values():
        rel = str(path.relative_to(package_dir.parent))
        if rel == STATE_WRITER:
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in WRITES:
                if "EditJob.objects" in ast.unparse(node.func.value):
                    found.append(f"{rel}:{node.lineno}: {ast.unparse(node.func)[:80]}")
    return found


def test_only_the_state_writer_writes_job_rows() -> None:
    assert job_row_writes(ROOT / "editor") == []


def test_editor_has_no_import_cycle_and_no_hidden_imports_of_own_modules() -> None:
    assert problems(ROOT / "editor") == []


def test_the_checker_sees_a_cycle_and_hidden_imports(tmp_path: Path) -> None:
    package = tmp_path / "editor"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from editor import b\n")
    (package / "b.py").write_text("from editor.a import thing\n")
    (package / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from fashionsite import settings\n"
        "def f():\n    from . import a\n    import json\n"
    )
    assert problems(package) == [
        "editor/c.py:3: TYPE_CHECKING import of fashionsite",
        "editor/c.py:5: function-level import of editor.a",
        "import cycle: editor.a <-> editor.b",
    ]
