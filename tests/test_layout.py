"""The package's shape holds: only lmeval/ imports the heavy ML libraries (the dashboard never
does), nothing imports in a circle, and only the CLI prints (read by parsing the source).
The dashboard is its own top-level package (dashboard/), as the project was specified."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = [ROOT / "evalsuite", ROOT / "dashboard"]
ML = {"torch", "transformers", "lm_eval", "datasets", "accelerate"}


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in package.rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def test_the_dashboard_is_top_level_and_no_longer_inside_the_package():
    assert (ROOT / "dashboard" / "app.py").is_file()
    assert not (ROOT / "evalsuite" / "dashboard").exists()
    assert any(name.startswith("dashboard.views.") for name in _modules())


def _imports(path: Path, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_only_lmeval_imports_torch_transformers_or_lm_eval():
    offenders = {
        name: sorted(i for i in _imports(path) if i.split(".")[0] in ML)
        for name, path in _modules().items() if not name.startswith("evalsuite.lmeval")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_no_import_cycles_at_module_level():
    modules = _modules()
    graph = {name: {i for i in _imports(path, top_level_only=True) if i in modules}
             for name, path in modules.items()}
    # a package imports its own modules to re-export them: that edge is not a cycle of concepts
    graph = {name: {d for d in deps if not d.startswith(name + ".")} for name, deps in graph.items()}
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        if node in trail:
            cycles.append(trail[trail.index(node):] + [node])
            return
        for dep in graph[node]:
            visit(dep, trail + [node])

    for name in graph:
        visit(name, [])
    assert cycles == []


def test_only_the_cli_prints():
    """The package returns text and reports through callbacks; cli.py decides what reaches the
    terminal. (A module's own `main()`, run with `python -m`, is a command line too.)"""
    printing = set()
    for name, path in _modules().items():
        if name == "evalsuite.cli":
            continue
        for func in ast.walk(ast.parse(path.read_text())):
            if isinstance(func, (ast.FunctionDef, ast.Module)) and getattr(func, "name", "") != "main":
                body = func.body if isinstance(func, ast.FunctionDef) else [
                    n for n in func.body if not isinstance(n, (ast.FunctionDef, ast.ClassDef))]
                calls = [n for stmt in body for n in ast.walk(stmt) if isinstance(n, ast.Call)]
                if any(isinstance(c.func, ast.Name) and c.func.id in ("print", "input") for c in calls):
                    printing.add(name)
    assert printing == set()
