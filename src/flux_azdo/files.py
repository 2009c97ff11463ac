"""Reading a manifests folder and writing planned files all-or-nothing.

Every file is first written next to its target under a temporary name; only when all
of them are on disk are they renamed into place, so a failure leaves no half-written
file behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from flux_azdo.errors import UserError

MAX_SCANNED_FILES = 2000


def read_text_tree(folder: Path) -> dict[str, str]:
    """Text files under `folder`, keyed by POSIX path relative to it; binary files are skipped."""
    found: dict[str, str] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.rglob("*")):
        if len(found) >= MAX_SCANNED_FILES:
            break
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts):
            try:
                found[path.relative_to(folder).as_posix()] = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
    return found


def write_files_atomically(root: Path, contents: Mapping[str, str]) -> None:
    """Write every `relative path -> text` under `root`, or none of them."""
    for relative in contents:
        if (root / relative).is_dir():
            raise UserError(f"cannot write {root / relative}: it is a folder; move it away and run again")
    staged: list[tuple[str, Path]] = []
    try:
        for relative, text in contents.items():
            target = root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
            staged.append((tmp, target))
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
                out.write(text)
            os.chmod(tmp, 0o644)
        for tmp, target in staged:
            os.replace(tmp, target)
    except OSError as exc:
        for tmp, _ in staged:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise UserError(f"cannot write under {root}: {exc.strerror or exc}; check the folder's permissions") from None
