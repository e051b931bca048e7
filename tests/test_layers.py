"""The package's layers, read from its imports (module-level and inside functions alike).

Rules (docs/architecture.md): no import circle between tdeploy modules; no import from a later layer
into an earlier one; ``tensorrt``/``tensorrt_rtx`` only under ``tdeploy/tensorrt/`` and in the
plugins' TensorRT modules; no ``try: import ... except ImportError`` around a module of tdeploy itself.
Each rule is also run on a small hand-written tree that breaks it, so that a rule that can no longer
fail is noticed.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "tdeploy"

# Package prefix -> layer; the longest prefix that matches a module wins.
LAYERS = {
    "tdeploy": 0,  # tdeploy/__init__.py: the version
    "tdeploy.errors": 0,
    "tdeploy.artifact": 0,
    "tdeploy.plugins": 1,
    "tdeploy.models": 2,
    "tdeploy.runtime": 3,
    "tdeploy.export": 4,
    "tdeploy.tensorrt": 5,
    "tdeploy.deploy": 6,
}
TENSORRT_MODULES = ("tensorrt", "tensorrt_rtx", "tensorrt_rtx_libs", "tensorrt_libs")


def tensorrt_may_be_imported(module: str) -> bool:
    """tdeploy/tensorrt/**, each plugin's trt*.py and the shared plugins/qdp.py."""
    parts = module.split(".")
    return (module.startswith("tdeploy.tensorrt.") or module == "tdeploy.tensorrt"
            or (parts[:2] == ["tdeploy", "plugins"] and (parts[-1].startswith("trt") or parts[-1] == "qdp")))


@dataclass
class Tree:
    """The imports of a package tree: module -> [(imported module, line)], and the rule breaches found."""

    modules: dict[str, Path]
    imports: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    hidden: list[str] = field(default_factory=list)  # try/except ImportError around a tdeploy import


def module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(name: str, modules: dict[str, Path]) -> str:
    """``a.b.c`` -> the longest prefix that is a module of the tree (``from a.b import c`` names c)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return name


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def read_tree(root: Path, files: dict[str, str] | None = None) -> Tree:
    """Parse every module below ``root`` (or the given {relative path: source} files)."""
    sources = files or {str(p.relative_to(root.parent)): p.read_text() for p in sorted(root.rglob("*.py"))}
    modules = {module_name(root.parent / rel, root): root.parent / rel for rel in sources}
    tree = Tree(modules)
    for rel, text in sources.items():
        path = root.parent / rel
        name = module_name(path, root)
        package = name if _is_package(path) else name.rpartition(".")[0]
        found: list[tuple[str, int]] = []
        parsed = ast.parse(text, filename=rel)
        for node in ast.walk(parsed):
            if isinstance(node, ast.Import):
                found += [(alias.name, node.lineno) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    found.append((full if _resolve(full, modules) == full else base, node.lineno))
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and node.func.attr == "import_module" and node.args
                  and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                found.append((node.args[0].value, node.lineno))
            if isinstance(node, ast.Try):
                tree.hidden += _hidden_imports(node, rel)
        tree.imports[name] = [(_resolve(target, modules), line) for target, line in found]
    return tree


def _hidden_imports(node: ast.Try, rel: str) -> list[str]:
    """A try whose body imports a tdeploy module (or calls import_module) and that catches ImportError."""
    catches = False
    for handler in node.handlers:
        names = []
        if isinstance(handler.type, ast.Tuple):
            names = [getattr(e, "id", getattr(e, "attr", "")) for e in handler.type.elts]
        elif handler.type is not None:
            names = [getattr(handler.type, "id", getattr(handler.type, "attr", ""))]
        catches |= handler.type is None or bool({"ImportError", "ModuleNotFoundError"} & set(names))
    if not catches:
        return []
    hits = []
    for inner in (n for stmt in node.body for n in ast.walk(stmt)):
        if isinstance(inner, ast.ImportFrom) and (inner.level or (inner.module or "").startswith("tdeploy")):
            hits.append(f"{rel}:{inner.lineno}")
        elif isinstance(inner, ast.Import) and any(a.name.startswith("tdeploy") for a in inner.names):
            hits.append(f"{rel}:{inner.lineno}")
        elif isinstance(inner, ast.Call) and getattr(inner.func, "attr", "") == "import_module":
            hits.append(f"{rel}:{inner.lineno}")
    return hits


def layer_of(module: str) -> int | None:
    best = None
    for prefix, layer in LAYERS.items():
        if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, layer)
    return best[1] if best else None


# --- the four rules ----------------------------------------------------------------------------------------
def import_cycles(tree: Tree) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), plus self-imports."""
    graph = {m: sorted({t for t, _ in tree.imports.get(m, []) if t in tree.modules and t != m}) for m in tree.modules}
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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

    for v in graph:
        if v not in index:
            visit(v)
    return out


def backward_imports(tree: Tree) -> list[str]:
    bad = []
    for module, targets in tree.imports.items():
        own = layer_of(module)
        for target, line in targets:
            theirs = layer_of(target) if target.startswith("tdeploy") else None
            if own is not None and theirs is not None and theirs > own:
                bad.append(f"{module}:{line} (layer {own}) imports {target} (layer {theirs})")
    return bad


def misplaced_tensorrt(tree: Tree) -> list[str]:
    return [f"{module}:{line} imports {target}" for module, targets in tree.imports.items()
            for target, line in targets
            if target.split(".")[0] in TENSORRT_MODULES and not tensorrt_may_be_imported(module)]


@pytest.fixture(scope="module")
def tdeploy_tree() -> Tree:
    return read_tree(ROOT)


def test_every_module_has_a_layer(tdeploy_tree):
    assert [m for m in tdeploy_tree.modules if layer_of(m) is None] == []


def test_no_import_cycles(tdeploy_tree):
    assert import_cycles(tdeploy_tree) == []


def test_no_import_from_a_later_layer(tdeploy_tree):
    assert backward_imports(tdeploy_tree) == []


def test_tensorrt_only_in_its_package_and_the_plugin_trt_modules(tdeploy_tree):
    assert misplaced_tensorrt(tdeploy_tree) == []
    importers = {m for m, targets in tdeploy_tree.imports.items() for t, _ in targets
                 if t.split(".")[0] in TENSORRT_MODULES}
    assert any(m.startswith("tdeploy.tensorrt") for m in importers)  # the walker sees function-level imports


def test_no_tdeploy_module_hidden_behind_import_error(tdeploy_tree):
    assert tdeploy_tree.hidden == []


def test_the_rules_catch_a_tree_that_breaks_them(tmp_path):
    root = tmp_path / "tdeploy"
    files = {
        "tdeploy/__init__.py": "",
        "tdeploy/errors.py": "",
        "tdeploy/artifact/__init__.py": "",
        "tdeploy/artifact/folder.py": "def f():\n    from tdeploy.deploy.cli import main\n",  # lazy, still backward
        "tdeploy/plugins/__init__.py": "",
        "tdeploy/plugins/a.py": "from tdeploy.plugins import b\n",
        "tdeploy/plugins/b.py": "from . import a\nimport tensorrt\n",  # cycle a <-> b; tensorrt outside trt.py
        "tdeploy/plugins/op/__init__.py": "",
        "tdeploy/plugins/op/trt.py": "def register():\n    import tensorrt\n",  # allowed
        "tdeploy/deploy/__init__.py": "",
        "tdeploy/deploy/cli.py": ("import importlib\ntry:\n    importlib.import_module('tdeploy.deploy.x')\n"
                                  "except ModuleNotFoundError:\n    pass\n"),
    }
    tree = read_tree(root, files)
    assert import_cycles(tree) == [["tdeploy.plugins.a", "tdeploy.plugins.b"]]
    assert backward_imports(tree) == ["tdeploy.artifact.folder:2 (layer 0) imports tdeploy.deploy.cli (layer 6)"]
    assert misplaced_tensorrt(tree) == ["tdeploy.plugins.b:2 imports tensorrt"]
    assert tree.hidden == ["tdeploy/deploy/cli.py:3"]
