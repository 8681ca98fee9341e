"""What ``labcam.connect()`` costs a kernel: it is a client, so it loads no server code.

A kernel that only talks to a camera served elsewhere must not pay for the server package, the
preview pipeline or the JPEG encoder (simplejpeg), and the client must not depend on the engine or
the drivers of a camera it does not own. Checked in a fresh interpreter (nothing imported by
pytest or by other tests can hide a stray import) against a real standalone server on loopback,
and statically on the source of ``labcam/remote``.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import labcam

REMOTE_PACKAGE = Path(labcam.__file__).parent / "remote"
# What a connect() kernel must not load, as module-name prefixes.
CLIENT_MUST_NOT_LOAD = ("labcam.server", "labcam.preview", "simplejpeg")
# What the client code must not import: the in-process camera's side.
CLIENT_MUST_NOT_IMPORT = ("labcam.engine", "labcam.cameras")

PROBE = """
import json, sys
import labcam

cam = labcam.connect(sys.argv[1])
stack = cam.acquire(5)
image = cam.snap()
cam.close()
print(json.dumps({"modules": sorted(sys.modules), "stack": list(stack.shape), "snap": list(image.shape)}))
"""


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports anywhere in it (top level, functions, TYPE_CHECKING blocks),
    relative imports resolved against its package."""
    package = "labcam.remote"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
            else:
                base = ""
            if node.module:
                module = f"{base}.{node.module}" if base else node.module
                found.add(module)
                found.update(f"{module}.{alias.name}" for alias in node.names)  # may be submodules
            else:  # from .. import engine
                found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def test_connect_acquire_and_snap_load_no_server_preview_or_jpeg_code(make_server: Any) -> None:
    srv = make_server(width=64, height=48, fps=100.0, exposure_ms=1.0)
    result = subprocess.run(
        [sys.executable, "-c", PROBE, srv.url], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["stack"] == [5, 48, 64] and report["snap"] == [48, 64]  # it really talked to the server
    loaded = sorted(m for m in report["modules"] if _within(m, CLIENT_MUST_NOT_LOAD))
    assert not loaded, f"labcam.connect() + acquire + snap loaded {loaded}"


def test_the_remote_client_imports_nothing_of_the_engine_or_the_drivers() -> None:
    sources = sorted(REMOTE_PACKAGE.glob("*.py"))
    assert {p.name for p in sources} >= {"__init__.py", "transport.py", "camera.py"}
    offending = {
        f"{p.name}: {m}" for p in sources for m in _imported_modules(p) if _within(m, CLIENT_MUST_NOT_IMPORT)
    }
    assert not offending, f"labcam/remote imports {sorted(offending)}"
