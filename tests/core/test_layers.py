"""Nothing below the platforms imports a platform.

The services, the store, the core and the drivers serve every platform; a platform's wire
contract lives in ``bridge/platforms/<name>/`` and adapts itself to the services
(``bridge/services/operations.py``). Only the composition root (``bridge/app.py``) and the
programs that start a bridge (the CLI, ``serve``, the demo) may name a platform. Checked on
every module's AST: what it imports itself, at any depth of the file.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLATFORMS = "bridge.platforms"

#: Modules that wire platforms in: the composition root and the programs that start it (and
#: ``pos-bridge loke-sandbox``, which starts LOKE's stand-in).
COMPOSITION = {
    "bridge.app",
    "bridge.cli.main",
    "bridge.cli.serve",
    "bridge.cli.demo",
    "bridge.cli.demo_loke",
    "bridge.cli.loke_sandbox",
}


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _platform_importers() -> set[str]:
    found = set()
    for folder in ("bridge", "drivers"):
        for path in (ROOT / folder).rglob("*.py"):
            name = _module_name(path)
            if name.startswith(PLATFORMS + ".") or name == PLATFORMS:
                continue
            if any(i == PLATFORMS or i.startswith(PLATFORMS + ".") for i in _imports(path)):
                found.add(name)
    return found


def test_only_the_composition_root_imports_a_platform():
    assert _platform_importers() - COMPOSITION == set()


def test_the_check_sees_an_import_at_any_depth(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from bridge.platforms.loke import PLATFORM\n")
    assert "bridge.platforms.loke" in _imports(sample)
