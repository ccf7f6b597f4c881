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
CORE_FILES = sorted(
    [
        *ROOT.glob("bridge/core/*.py"),
        # The tunnel protocol (frames, protocol, errors, and messages, streams, fields and
        # handshake split from them) is sans-I/O: the relay and the client wrap it in their own
        # websocket loops.
        *ROOT.glob("tunnel/*.py"),
        ROOT / "bridge/http/fields.py",
        ROOT / "bridge/http/validation.py",
        ROOT / "bridge/http/admin_bodies.py",
        ROOT / "bridge/http/json_body.py",
        ROOT / "tunnel/headers.py",
        ROOT / "common/errors.py",
        ROOT / "common/answers.py",
        ROOT / "bridge/platforms/loke/contract.py",
        ROOT / "bridge/platforms/loke/bodies.py",
        ROOT / "bridge/platforms/loke/openapi_schemas.py",
        ROOT / "drivers/base.py",
        ROOT / "drivers/controls.py",  # the optional controls capability, next to the interface
        ROOT / "drivers/errors.py",
        ROOT / "drivers/simulator/model.py",
        ROOT / "drivers/wire/messages.py",  # the catalogue every wire protocol carries
        ROOT / "drivers/tcp/codec.py",
        ROOT / "drivers/filedrop/naming.py",  # file-drop's names and rules (no os either)
        # PBS1 framing, line timers and ARQ: `now` is an argument, the port is elsewhere.
        ROOT / "drivers/serial/frames.py",
        ROOT / "drivers/serial/settings.py",
        ROOT / "drivers/serial/arq.py",
        ROOT / "drivers/serial/codec.py",
    ]
)


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
