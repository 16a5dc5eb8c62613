"""The package import graph of `src/openesd`: cycles between packages and imports that run up the layers.

Usage: `python scripts/import_graph.py [--verbose]` (no install needed; it reads the source with `ast`).
Exit status 1 when a package cycle or a module cycle exists, or more than `MAX_UPWARD` imports run from a
lower layer up.

How it counts:
- A node is a package directly under `openesd` (`openesd.auth`) or a top-level module (`openesd.errors`).
- Every `import`/`from ... import` of `openesd...` counts, at module level or inside a function; relative
  imports are resolved. Imports under `if TYPE_CHECKING:` are listed apart and count for nothing.
- An import counts once per (importing module, imported module) pair.
- A cycle is a strongly connected component of two or more packages; each is printed with the imports
  that close it. Circles between modules (inside one package too, e.g. two modules that import each
  other from inside functions) are reported as knots of modules.
- An import is upward when the imported package sits in a higher layer than the importer (`LAYERS`).
  Packages in the same layer may import each other (cycles among them are still reported).
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "src" / "openesd"
MAX_UPWARD = 4

# Layers, top first. A package may import its own layer and any layer below it.
LAYERS: list[tuple[str, list[str]]] = [
    # The application: assembles every domain into the ASGI app, the CLI and the console.
    ("server", ["server", "cli", "console", "__main__"]),
    # The ESD resources: routes, services, repositories, schemas (legacy is the ESD 1.4 adapter).
    (
        "resources",
        [
            "roles",
            "users",
            "tokens",
            "checkpoints",
            "endpoints",
            "inferences",
            "datasets",
            "trainings",
            "legacy",
            "webhooks",
            # Live job events: the inference and training code publishes into it; it imports neither.
            "jobevents",
            # The AUTOMATIC1111 API: WebUI calls as jobs, over the inferences, tokens and checkpoints.
            "sdapi",
        ],
    ),
    # The HTTP kit every resource's routes use: gateway, envelope, errors, validation, identity stages.
    # It sits under the resources, or every route would import upward (issue 14: `api/` is the kit).
    ("http", ["api"]),
    # Identity and access: principals, permissions, passwords, the ownership policy, and reading who the
    # caller is. Every resource and the HTTP identity stages use it, so it imports none of them.
    ("access", ["auth"]),
    # The client SDK: speaks HTTP to a server, imports no resource.
    ("client", ["client"]),
    # Running work: the engine (local processes or Ray) that hosts the workers.
    ("execution", ["execution"]),
    # The workers: image generation and LoRA training.
    ("workers", ["generation", "trainer", "training"]),
    # Offline model tools (merge, export) used by the workers and the legacy adapter.
    ("model tools", ["modeltools"]),
    # Foundations: object store, metadata database, model files, settings, errors, keys.
    ("foundations", ["storage", "metadata", "modelfiles", "settings", "errors", "keys", "__init__"]),
]
LAYER_OF = {package: rank for rank, (_, packages) in enumerate(LAYERS) for package in packages}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(path: Path, module: str) -> list[tuple[str, int, bool]]:
    """(imported openesd module, line, under TYPE_CHECKING) for every import in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, typing_only: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, True)
            for child in node.orelse:
                visit(child, typing_only)
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno, typing_only) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, module, is_package)
            # `from openesd.x import y` where y is a submodule counts the submodule, not `openesd.x`.
            submodules = [f"{base}.{alias.name}" for alias in node.names if _exists(f"{base}.{alias.name}")]
            if len(submodules) < len(node.names):
                found.append((base, node.lineno, typing_only))
            found.extend((name, node.lineno, typing_only) for name in submodules)
        for child in ast.iter_child_nodes(node):
            visit(child, typing_only)

    visit(tree, False)
    return [(name, line, typing_only) for name, line, typing_only in found if name.split(".")[0] == "openesd"]


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    if not is_package:
        parts = parts[:-1]
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def _exists(module: str) -> bool:
    relative = Path(*module.split(".")[1:])
    return (ROOT / relative).with_suffix(".py").exists() or (ROOT / relative / "__init__.py").exists()


def module_edges() -> dict[tuple[str, str], list[str]]:
    """Module edges (TYPE_CHECKING ones left out), for circles inside a package (`hires` <-> `txt2img`)."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in sorted(ROOT.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        module = module_name(path)
        for target, line, under_typing in imports_of(path, module):
            if not under_typing and target != module:
                edges[(module, target)].append(f"{module}:{line} -> {target}")
    return edges


def build() -> tuple[dict[tuple[str, str], list[str]], list[str]]:
    """Package edges with their evidence (`module:line -> module`), and the TYPE_CHECKING imports."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    typing_only: list[str] = []
    for path in sorted(ROOT.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        module = module_name(path)
        seen: set[tuple[str, bool]] = set()
        for target, line, under_typing in imports_of(path, module):
            if (target, under_typing) in seen:
                continue
            seen.add((target, under_typing))
            source_package, target_package = package_of(module), package_of(target)
            if source_package == target_package or target == "openesd":
                continue
            evidence = f"{module}:{line} -> {target}"
            if under_typing:
                typing_only.append(evidence)
            else:
                edges[(source_package, target_package)].append(evidence)
    return edges, typing_only


def cycles(edges: dict[tuple[str, str], list[str]]) -> list[list[str]]:
    """Strongly connected components of two or more packages (Tarjan)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for source, target in edges:
        graph[source].add(target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                connect(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(set(graph) | {target for _, target in edges}):
        if node not in index:
            connect(node)
    return components


def simple_cycles(edges: dict[tuple[str, str], list[str]]) -> list[list[str]]:
    """Every elementary cycle, each once, starting at its smallest package; shortest first."""
    graph: dict[str, set[str]] = defaultdict(set)
    for source, target in edges:
        graph[source].add(target)
    found: list[list[str]] = []

    def walk(start: str, path: list[str]) -> None:
        for successor in sorted(graph[path[-1]]):
            if successor == start:
                found.append(list(path))
            elif successor > start and successor not in path:
                walk(start, path + [successor])

    for start in sorted(graph):
        walk(start, [start])
    return sorted(found, key=lambda loop: (len(loop), loop))


def upward(edges: dict[tuple[str, str], list[str]]) -> list[str]:
    found = []
    for (source, target), evidence in sorted(edges.items()):
        if source not in LAYER_OF or target not in LAYER_OF:
            raise SystemExit(f"package {source if source not in LAYER_OF else target!r} has no layer in LAYERS")
        if LAYER_OF[target] < LAYER_OF[source]:
            found.extend(evidence)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true", help="also list every package edge")
    verbose = parser.parse_args().verbose
    edges, typing_only = build()
    components = cycles(edges)
    up = upward(edges)
    if verbose:
        print("package edges:")
        for (source, target), evidence in sorted(edges.items()):
            print(f"  {source} -> {target} ({len(evidence)})")
    loops = simple_cycles(edges)
    print(f"cycles between packages: {len(loops)} (in {len(components)} knot(s) of packages)")
    for component in components:
        print(f"  knot: {', '.join(component)}")
    for loop in loops:
        print(f"  {' -> '.join(loop + [loop[0]])}")
        for source, target in zip(loop, loop[1:] + [loop[0]]):
            evidence = edges[(source, target)]
            shown = evidence if verbose or len(loop) == 2 else evidence[:1]
            for line in shown:
                print(f"    {line}")
            if len(shown) < len(evidence):
                print(f"    ... and {len(evidence) - len(shown)} more {source} -> {target}")
    modules = module_edges()
    module_knots = cycles(modules)
    print(f"cycles between modules: {len(module_knots)} knot(s)")
    for knot in module_knots:
        print(f"  knot: {', '.join(knot)}")
        for (source, target), evidence in sorted(modules.items()):
            if source in knot and target in knot:
                for line in evidence:
                    print(f"    {line}")
    print(f"upward imports (layer order in LAYERS, at most {MAX_UPWARD}): {len(up)}")
    for line in up:
        print(f"  {line}")
    print(f"TYPE_CHECKING imports (not counted): {len(typing_only)}")
    for line in typing_only:
        print(f"  {line}")
    return 1 if components or module_knots or len(up) > MAX_UPWARD else 0


if __name__ == "__main__":
    sys.exit(main())
