"""The sandbox is an independent oracle: it must never import the product it checks."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import flux_azdo.sandbox

SANDBOX = Path(flux_azdo.sandbox.__file__).parent


def _imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = ".".join(("flux_azdo", *path.relative_to(SANDBOX.parent).parent.parts))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                names.append(".".join([*base, node.module] if node.module else base))
            elif node.module:
                names.append(node.module)
    return names


def test_no_sandbox_module_imports_the_product() -> None:
    offenders = []
    files = sorted(SANDBOX.rglob("*.py"))
    assert len(files) > 5
    for path in files:
        for name in _imported_modules(path):
            if name == "flux_azdo" or (name.startswith("flux_azdo.") and not name.startswith("flux_azdo.sandbox")):
                offenders.append(f"{path.relative_to(SANDBOX)} imports {name}")
    assert offenders == []


def test_importing_every_sandbox_module_loads_no_product_module() -> None:
    modules = sorted(
        ".".join(("flux_azdo", *path.relative_to(SANDBOX.parent).with_suffix("").parts))
        for path in SANDBOX.rglob("*.py")
        if path.name != "__main__.py"
    )
    probe = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name.removesuffix('.__init__'))\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('flux_azdo') and m != 'flux_azdo'"
        " and not m.startswith('flux_azdo.sandbox'))\n"
        "print(loaded)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
