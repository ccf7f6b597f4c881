"""The folders are the architecture: what may import what, checked on every module's AST.

- ``tunnel/`` (both ends' protocol and shell), ``common/`` (what bridge and relay share) and
  ``relay/`` (the cloud side) import nothing of ``bridge/`` or ``drivers/``: the relay is
  deployable without the venue's code, and a fresh interpreter proves it imports without the
  venue-side libraries (pyserial, sqlite-utils, APScheduler, watchfiles, platformdirs).
- No import cycles among our modules.
- No module imports another module's private name (``from x import _y``, ``x._y``).

Where a platform may be imported is ``tests/core/test_layers.py``; what the pure core may
import is ``tests/core/test_purity.py``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bridge", "relay", "tunnel", "common", "drivers")
#: Installed with the bridge, not needed by the relay.
VENUE_LIBRARIES = ("serial", "sqlite_utils", "apscheduler", "watchfiles", "platformdirs")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """Each absolute import in ``path`` (at any depth): the module and the names taken."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [alias.name for alias in node.names]))
    return found


def _first_party_targets(path: Path) -> set[str]:
    """The modules of ours that ``path`` imports (``from pkg import mod`` names ``pkg.mod``)."""
    targets = set()
    for module, names in _imports(path):
        submodules = {f"{module}.{name}" for name in names} & MODULES.keys()
        targets |= submodules
        if module in MODULES and (not names or len(submodules) < len(names)):
            targets.add(module)  # a name defined in the module itself, not a submodule
    return targets


def _type_checking_only(path: Path) -> set[str]:
    """Modules imported only under ``if TYPE_CHECKING:`` (never at run time)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for inner in ast.walk(node):
                if isinstance(inner, ast.ImportFrom) and inner.module:
                    names.add(inner.module)
    return names


def test_relay_tunnel_and_common_import_nothing_of_the_venue():
    offenders = {
        name: sorted(
            t for t in _first_party_targets(path) if t.split(".")[0] in ("bridge", "drivers")
        )
        for name, path in MODULES.items()
        if name.split(".")[0] in ("relay", "tunnel", "common")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_relay_imports_without_the_venue_libraries():
    relay_modules = sorted(n for n in MODULES if n.split(".")[0] in ("relay", "tunnel", "common"))
    blocked = (*VENUE_LIBRARIES, "bridge", "drivers")
    probe = (
        "import importlib, sys\n"
        f"for name in {blocked!r}: sys.modules[name] = None  # import fails\n"
        f"for name in {relay_modules!r}: importlib.import_module(name)\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in graph:
        if node not in index:
            visit(node)
    return components


def test_no_import_cycles():
    graph = {}
    for name, path in MODULES.items():
        typing_only = _type_checking_only(path)
        graph[name] = {t for t in _first_party_targets(path) if t not in typing_only}
    assert _cycles(graph) == []


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_private_name_of_another_module_is_imported_or_used():
    offenders = []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(), str(path))
        imported_modules = set()
        for module, names in _imports(path):
            imported_modules.update(n for n in names if f"{module}.{n}" in MODULES)
            offenders.extend(f"{name}: from {module} import {n}" for n in names if _private(n))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in imported_modules
                and _private(node.attr)
            ):
                offenders.append(f"{name}: {node.value.id}.{node.attr}")
    assert offenders == []


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_module_is_over_400_lines():
    """Small modules with one job each: past 400 lines, a module is split."""
    long = {
        name: lines
        for name, path in MODULES.items()
        if (lines := len(path.read_text().splitlines())) > 400
    }
    assert long == {}
