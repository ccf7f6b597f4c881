"""The pure core imports no I/O: no event loop, sockets, database, serial port or clock.

Checked twice: the AST of every core module (what it imports itself), and a fresh
interpreter that imports them all (what they pull in, transitively).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {
    "asyncio",
    "aiohttp",
    "sqlite3",
    "socket",
    "serial",
    "time",
    "websockets",
    "sqlite_utils",
    "threading",
    "selectors",
}
#: Folders whose every module is pure, at any depth, but for the I/O shells named beside them.
PURE_FOLDERS = {
    "bridge/core": (),
    "bridge/contracts": (),  # strict JSON, field types, pydantic's errors as ours
    "tunnel": ("tunnel/asyncio",),  # the sans-I/O protocol; its asyncio shell is apart
}
#: In the folders that keep a protocol beside its I/O, the protocol's modules by their role.
#: A driver's wire format (``codec``, ``frames``, ``arq``, ``settings``, ``naming``,
#: ``messages``, ``model``) and a platform's wire contract (``contract``, ``bodies``,
#: ``openapi_schemas``) are pure wherever they sit, and so is what the drivers' interface is
#: made of (``base``, ``errors``, ``controls``); ``common``'s errors and answers too.
PURE_ROLES = {
    "drivers": {
        "base",
        "errors",
        "controls",
        "codec",
        "frames",
        "arq",
        "settings",
        "naming",
        "messages",
        "model",
    },
    "bridge/platforms": {"contract", "bodies", "openapi_schemas"},
    "common": {"errors", "answers"},
}


def _pure_files() -> list[Path]:
    found: set[Path] = set()
    for folder, shells in PURE_FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            if not any(path.is_relative_to(ROOT / shell) for shell in shells):
                found.add(path)
    for folder, roles in PURE_ROLES.items():
        found.update(p for p in (ROOT / folder).rglob("*.py") if p.stem in roles)
    return sorted(found)


CORE_FILES = _pure_files()


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_core_modules_import_no_io_directly():
    offenders = {
        _module_name(path): sorted(_imports(path) & FORBIDDEN)
        for path in CORE_FILES
        if _imports(path) & FORBIDDEN
    }
    assert offenders == {}


def test_core_modules_pull_in_no_io_transitively():
    modules = [_module_name(p) for p in CORE_FILES]
    probe = (
        "import importlib, json, sys\n"
        f"before = set(sys.modules)\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True
    )
    loaded = {name.split(".")[0] for name in json.loads(result.stdout)}
    # ``time`` is imported by parts of the standard library itself; the AST test above keeps
    # the core from using it. So are ``socket`` and ``selectors``: pydantic (the contracts'
    # models) loads ``importlib.metadata`` for its plugins, which loads ``email.utils``, which
    # imports ``socket`` for ``getfqdn``; no socket is made. Everything else on the list
    # (asyncio, aiohttp, sqlite3, serial, websockets) must stay out entirely.
    stdlib_side_effects = {"time", "threading", "socket", "selectors"}
    assert loaded & (FORBIDDEN - stdlib_side_effects) == set()


def test_purity_check_sees_a_forbidden_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import asyncio\nfrom sqlite3 import connect\n")
    assert _imports(bad) & FORBIDDEN == {"asyncio", "sqlite3"}


def test_the_pure_list_is_derived_from_the_folders():
    names = {_module_name(p) for p in CORE_FILES}
    # one of each kind: a core module, a contract helper, the tunnel protocol, a driver's
    # codec, a platform's contract; and never the tunnel's asyncio shell
    assert {
        "bridge.core.lifecycle",
        "bridge.contracts.validation",
        "tunnel.protocol",
        "drivers.serial.codec",
        "bridge.platforms.loke.bodies",
    } <= names
    assert not any(n.startswith("tunnel.asyncio") for n in names)
