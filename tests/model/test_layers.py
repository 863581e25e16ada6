"""The import graph of ``src/samkit``, read from the source (every import statement: module
level, inside functions and under ``TYPE_CHECKING``): no cycle, no task module importing the
``SAM`` front, and ``isinstance`` on encoder configs only inside the families package."""

from __future__ import annotations

import ast
from pathlib import Path

import samkit

ROOT = Path(samkit.__file__).parent

# The SAM front and what stands above it (the CLI, the Ultralytics-style Predictor, the
# package's lazy exports).
FRONT = "samkit.model"
ABOVE_FRONT = ("samkit.cli", "samkit.interactive", "samkit")
TASKS = (
    "samkit.amg",
    "samkit.automatic",
    "samkit.annotate",
    "samkit.evaluation",
    "samkit.train",
    "samkit.distillation",
    "samkit.label",
    "samkit.cluster",
    "samkit.embed",
    "samkit.embeddings",
    "samkit.export",
)
ENCODER_CONFIGS = {"ViTConfig", "TinyViTConfig"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str) -> set[str]:
    """The samkit modules ``module`` imports anywhere in its source."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            names = [f"{base}.{a.name}" for a in node.names]
        for name in names:
            target = _resolve(name)
            if target is not None and target != module:
                found.add(target)
    return found


GRAPH = {m: _imports(m) for m in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_graph_is_read_from_every_import() -> None:
    """The reader sees function-level and TYPE_CHECKING imports (so the checks below bite)."""
    assert "samkit.families" in GRAPH["samkit.build"]  # module level
    assert "samkit.entrance" in GRAPH["samkit.embed"]  # inside a function
    assert "samkit.modeling" in GRAPH["samkit.entrance"]  # under TYPE_CHECKING
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]


def test_no_import_cycle() -> None:
    assert _cycles(GRAPH) == []


def test_no_task_imports_the_front() -> None:
    offenders = sorted(
        m
        for m, targets in GRAPH.items()
        if FRONT in targets and m.startswith(TASKS) and not m.startswith(ABOVE_FRONT[:2])
    )
    assert offenders == []
    importers = {m for m, targets in GRAPH.items() if FRONT in targets}
    assert importers <= {m for m in MODULES if m == "samkit" or m.startswith(ABOVE_FRONT[:2])}


def test_isinstance_on_encoder_configs_only_inside_the_families() -> None:
    found = []
    for module, path in MODULES.items():
        if module.startswith("samkit.families"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance":
                named = {
                    getattr(n, "id", None) or getattr(n, "attr", None)
                    for n in ast.walk(node.args[1])
                }
                if named & ENCODER_CONFIGS:
                    found.append(f"{module}:{node.lineno}")
    assert found == []
