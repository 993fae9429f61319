"""The import graph of ``src/postloc`` keeps the layers of docs/architecture.md: no cycles, no upward imports.

Every module is parsed with :mod:`ast` (nothing is imported), and every ``import postloc.x`` and
``from postloc.x import y`` counts, at module level and inside functions alike: a lazy import
inside a function is still a dependency, it only moves the failure to run time.

What is an edge. ``from P import name`` points at the submodule ``P.name`` when there is one;
otherwise at the module that defines ``name``, following a package ``__init__``'s re-exports
(``from postloc.models import load_model`` depends on ``postloc.models.registry``, not on the
whole of ``postloc.models``). Only what cannot be followed (a name defined in ``__init__``
itself) points at the ``__init__``.

What is allowed.
- A package's ``__init__`` may import its own submodules: that is how it re-exports them, and
  Python's import system handles it (a submodule is always imported after its package's
  ``__init__`` has started). Those edges are left out of the cycle check, so a cycle is any
  loop between modules that remains: two modules that need each other, one of them lazily or
  not, are one concept split in two, or a lower one that learnt about a higher one.
- The layer rule is checked on every edge, ``__init__`` re-exports included: a module may import
  its own top-level unit (``postloc.models.mrlf`` -> ``postloc.models.base``) and units of a
  strictly lower layer. Units on one layer are independent of each other: ``scale`` and
  ``serve`` both use ``inference``, neither needs the other (batch prediction must not need
  the server package).
- ``postloc`` itself, the root ``__init__``, re-exports ``__version__`` (kept in ``postloc._version``,
  which any layer may read) and is the README's facade
  (``postloc.prepare``, ``postloc.read_posts``, ...). Its re-exported names are followed to
  their sources like any other, and its own imports are exempt from the layer rule (a facade
  gathers from above), though not from the named rules (it never imports the CLI).
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import postloc

PACKAGE = Path(postloc.__file__).resolve().parent

#: Layer of each top-level unit of ``postloc`` (the key is the name after ``postloc.``; ``""`` is
#: the root ``__init__``). A module may import its own unit and units of lower layers only.
#: docs/architecture.md shows the same table; keep the two together.
LAYERS: dict[str, int] = {
    "errors": 0,
    "_version": 0,
    "": 0,  # the typed errors every layer raises; the package version; the root facade
    "settings": 1,
    "io": 1,  # dataclass settings from dicts; atomic file writes, model-file IO
    "text": 2,  # normalisation, vocabulary, language id, the hashtag rule
    "data": 3,  # schema, readers, writers, prepare, POIs, splits, prepared folders, image-feature files
    "datasets": 4,
    "vision": 4,
    "metrics": 4,  # embedded and synthetic data; images to vectors; scores
    "nn": 5,  # the epoch loop, its settings, checkpoints, DDP; knows no model
    "models": 6,  # estimators, the registry, MRLF and the baselines
    "training": 7,
    "inference": 7,  # run folders (train, evaluate); load a model, predict, batch files, explain
    "serve": 8,
    "scale": 8,
    "experiments": 8,  # HTTP API; Ray jobs; the paper's studies
    "predict": 8,  # postloc.predict: the README's import path, a re-export of inference
    "quickstart": 9,  # raw posts to a scored, reported run in one call (uses the experiments)
    "cli": 10,  # the command line, which nothing in the library imports
    "__main__": 11,  # python -m postloc
}


def _module_name(path: Path) -> str:
    parts = ("postloc",) + path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def _modules() -> dict[str, tuple[Path, ast.Module]]:
    """Dotted name -> (file, parsed tree) of every module under src/postloc."""
    return {
        _module_name(p): (p, ast.parse(p.read_text(encoding="utf-8"), str(p))) for p in sorted(PACKAGE.rglob("*.py"))
    }


def _is_package(name: str) -> bool:
    return _modules()[name][0].name == "__init__.py"


def _base(module: str, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` statement reads from (relative ones resolved)."""
    if not node.level:
        return node.module or ""
    package = module if _is_package(module) else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def _reexports(package: str) -> dict[str, str]:
    """Names a package ``__init__`` imports from postloc modules -> the module each comes from."""
    out: dict[str, str] = {}
    for node in _modules()[package][1].body:
        if isinstance(node, ast.ImportFrom):
            base = _base(package, node)
            for alias in node.names:
                out[alias.asname or alias.name] = _resolve_name(base, alias.name)
    return out


def _resolve_name(base: str, name: str) -> str:
    """The module that ``from base import name`` depends on (see the module docstring)."""
    if f"{base}.{name}" in _modules():
        return f"{base}.{name}"
    if base in _modules() and _is_package(base):
        source = _reexports(base).get(name)
        if source is not None:
            return source
    return base


@cache
def _graph() -> dict[str, set[str]]:
    """Module -> the postloc modules it imports (anywhere in its body)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, (_, tree) in modules.items():
        targets: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = _base(name, node)
                targets |= {_resolve_name(base, alias.name) for alias in node.names if alias.name != "*"}
        graph[name] = {_known(t) for t in targets if t == "postloc" or t.startswith("postloc.")} - {name}
    return graph


def _known(name: str) -> str:
    """``name`` or its nearest enclosing module that exists (``postloc.x.Class`` -> ``postloc.x``)."""
    while name not in _modules():
        name = name.rpartition(".")[0]
    return name


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _is_reexport(source: str, target: str) -> bool:
    """An ``__init__`` importing something inside its own package."""
    return _is_package(source) and target.startswith(source + ".")


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _describe(component: list[str], graph: dict[str, set[str]]) -> str:
    """A cycle for the failure message: its modules' imports of each other."""
    members = set(component)
    return "; ".join(f"{m} -> {', '.join(sorted(graph[m] & members))}" for m in component)


def test_every_unit_has_a_layer():
    units = {_unit(m) for m in _modules()}
    assert units <= set(LAYERS), f"give these top-level units a layer in LAYERS: {sorted(units - set(LAYERS))}"
    assert set(LAYERS) <= units, f"LAYERS names units that do not exist: {sorted(set(LAYERS) - units)}"


def test_the_graph_sees_lazy_relative_and_reexported_imports():
    graph = _graph()
    assert "postloc.errors" in graph["postloc.settings"]  # module level
    assert "postloc.io.atomic" in graph["postloc.metrics"]  # inside a function
    assert "postloc.inference.predictor" in graph["postloc.predict"]  # a re-export, followed to its source
    assert all(targets <= set(graph) for targets in graph.values())


def test_no_import_cycles():
    graph = {m: {t for t in targets if not _is_reexport(m, t)} for m, targets in _graph().items()}
    loops = [_describe(c, graph) for c in _cycles(graph)]
    assert not loops, "import cycles (two modules that need each other):\n  " + "\n  ".join(loops)


def test_no_upward_or_sideways_imports():
    wrong = sorted(
        f"{m} ({_unit(m) or 'postloc'}, layer {LAYERS[_unit(m)]}) imports {t} "
        f"({_unit(t) or 'postloc'}, layer {LAYERS[_unit(t)]})"
        for m, targets in _graph().items()
        if m != "postloc"
        for t in targets
        if _unit(t) != _unit(m) and LAYERS[_unit(t)] >= LAYERS[_unit(m)]
    )
    assert not wrong, (
        "imports from a higher layer or a unit of the same layer (docs/architecture.md):\n  " + "\n  ".join(wrong)
    )


def test_the_named_rules():
    """The rules the issue names, spelt out so that a failure says which one broke."""
    graph = _graph()
    broken = sorted(
        f"{m} imports {t}"
        for m, targets in graph.items()
        for t in targets
        if (_unit(t) in ("cli", "__main__") and _unit(m) not in ("cli", "__main__"))
        or (_unit(m) == "models" and _unit(t) == "training")
        or (_unit(m) == "inference" and _unit(t) in ("serve", "scale"))
    )
    assert not broken, "library -> cli, models -> training or inference -> serve/scale:\n  " + "\n  ".join(broken)
