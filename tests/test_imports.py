"""The dependency rule, read from the source (ast), imports inside functions included:

- a package may not import the packages FORBIDDEN names for it (model never imports search; data
  never imports model or search);
- no import cycle between modules of data/, model/ and search/;
- `pairtune status --help` imports neither torch, Ray nor Lightning.

Imports under `if TYPE_CHECKING:` are for annotations only and are not counted. A new room under
search/ gets its row in FORBIDDEN.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("data", "model", "search")
# package prefix -> prefixes its modules must not import
FORBIDDEN = {
    "model": ("search",),
    "data": ("model", "search"),
    # search/: cli -> recipes, tune, runs -> config -> model, data (tune may read and write runs/)
    "search.config": ("search.tune", "search.runs", "search.recipes", "search.cli"),
    "search.runs": ("search.tune", "search.recipes", "search.cli"),
    "search.tune": ("search.recipes", "search.cli"),
    "search.recipes": ("search.cli",),
}
HEAVY = ("torch", "ray", "pytorch_lightning")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imported_names(tree: ast.AST, package: str):
    """Every module an import statement names (`from a.b import c` -> a.b and a.b.c), anywhere."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if _type_checking_only(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)
        stack.extend(ast.iter_child_nodes(node))


def import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports (a name that is an attribute, not a module, is dropped)."""
    files = {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    graph = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        found = {n for n in imported_names(ast.parse(path.read_text(encoding="utf-8")), package) if n in files}
        graph[name] = found - {name}
    return graph


def rule_breaks(graph: dict[str, set[str]]) -> list[str]:
    out = []
    for module, targets in sorted(graph.items()):
        for prefix, forbidden in FORBIDDEN.items():
            if module == prefix or module.startswith(prefix + "."):
                out += [f"{module} imports {t}" for t in sorted(targets)
                        if any(t == f or t.startswith(f + ".") for f in forbidden)]
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one module (Tarjan)."""
    index, low, on_stack, stack, out, counter = {}, {}, set(), [], [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_packages_import_only_what_the_rule_allows():
    assert rule_breaks(import_graph()) == []


def test_no_import_cycles_even_through_imports_inside_functions():
    assert cycles(import_graph()) == []


def test_the_checker_sees_a_rule_break_and_a_cycle():
    graph = {"data.a": {"model.b"}, "model.b": {"search.c"}, "search.c": {"search.d"}, "search.d": {"search.c"}}
    assert rule_breaks(graph) == ["data.a imports model.b", "model.b imports search.c"]
    assert cycles(graph) == [["search.c", "search.d"]]


def test_status_help_imports_neither_torch_ray_nor_lightning():
    code = ("import sys\nfrom search.cli.main import main\ntry:\n    main(['status', '--help'])\nexcept SystemExit:\n    pass\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                         env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_check_imports_neither_ray_nor_lightning():
    """`pairtune check` runs before anything expensive: it tokenises (torch, transformers), and says when
    validations miss ASHA's rungs (model/epochs.py), without Ray or Lightning."""
    code = ("import sys\nfrom search.cli.main import main\nmain(['check', 'configs/quickstart.yaml'])\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300,
                         env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "['torch']"
