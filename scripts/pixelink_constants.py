#!/usr/bin/env python
"""Record the constants and structure layouts of the vendor's ``pixelinkWrapper`` wheels as JSON.

The fake SDK in tests/fake_pixelink must carry the real wrapper's values; its fidelity test
(tests/test_fake_pixelink.py) checks them against tests/fake_pixelink/real_constants.json, which
this script writes. It reads the wrapper's source with ``ast`` and never imports it (importing
needs the native library). Neither the wheels nor their code are committed, only the numbers.

    pip download --no-deps -d /tmp/pxl pixelinkWrapper==1.2.0 pixelinkWrapper==1.3.1 \\
        pixelinkWrapper==1.4.1 pixelinkWrapper==1.5.0      # one version per pip call if it insists
    python scripts/pixelink_constants.py /tmp/pxl/*.whl

Output: {"wheels": {version: {"sha256", "classes": {Name: {CONST: int}}, "structures":
{Name: [[field, ctype], ...]}, "functions": [name, ...]}}}; nested structures are named
``Outer.Inner``. Only integer constants are kept (class attributes whose value is an int literal,
possibly negative).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "tests" / "fake_pixelink" / "real_constants.json"
MODULE = "pixelinkWrapper/pixelink.py"


def _int_value(node: ast.expr) -> int | None:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _int_value(node.operand)
        return None if inner is None else -inner
    return None


def _fields(cls: ast.ClassDef) -> list[list[str]] | None:
    for stmt in cls.body:
        if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name) and stmt.targets[0].id == "_fields_"
                and isinstance(stmt.value, ast.List)):
            out = []
            for elt in stmt.value.elts:
                if isinstance(elt, ast.Tuple) and len(elt.elts) == 2 and isinstance(elt.elts[0], ast.Constant):
                    out.append([str(elt.elts[0].value), ast.unparse(elt.elts[1])])
            return out
    return None


def _walk_class(cls: ast.ClassDef, prefix: str, classes: dict[str, Any], structures: dict[str, Any]) -> None:
    name = prefix + cls.name
    fields = _fields(cls)
    if fields is not None:
        structures[name] = fields
    constants = {}
    for stmt in cls.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            value = _int_value(stmt.value)
            if value is not None:
                constants[stmt.targets[0].id] = value
        elif isinstance(stmt, ast.ClassDef):
            _walk_class(stmt, name + ".", classes, structures)
    if constants and fields is None:
        classes[name] = constants


def read_wheel(path: Path) -> tuple[str, dict[str, Any]]:
    """(version, record) of one wheel file."""
    data = path.read_bytes()
    with zipfile.ZipFile(path) as wheel:
        source = wheel.read(MODULE).decode("utf-8")
        meta = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
        version = re.search(r"^Version: (\S+)", wheel.read(meta).decode("utf-8"), re.M).group(1)  # type: ignore[union-attr]
    tree = ast.parse(source)
    api = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "PxLApi")
    classes: dict[str, Any] = {}
    structures: dict[str, Any] = {}
    functions = []
    for stmt in ast.walk(api):
        if isinstance(stmt, ast.ClassDef) and stmt is not api and stmt in api.body:
            _walk_class(stmt, "", classes, structures)
    for stmt in api.body:
        if isinstance(stmt, ast.FunctionDef):
            functions.append(stmt.name)
    return version, {
        "sha256": hashlib.sha256(data).hexdigest(),
        "classes": classes,
        "structures": structures,
        "functions": sorted(set(functions)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wheels", nargs="+", type=Path, help="downloaded pixelinkWrapper .whl files")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON file to write (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    record = {"wheels": dict(sorted(read_wheel(p) for p in args.wheels))}
    args.out.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    for version, wheel in record["wheels"].items():
        print(f"{version}: {len(wheel['classes'])} constant classes, {len(wheel['structures'])} structures, "
              f"{len(wheel['functions'])} functions")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
