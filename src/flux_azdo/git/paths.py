"""Names the caller controls, checked before git or the file system sees them: branch names and the repository
paths a change writes.

A change names files by repository-relative paths, and those paths end up in `open()` calls inside the checkout.
Nothing may escape it (`..`, absolute paths, a symbolic link planted in the repository) or reach into `.git`
(hooks, config): the guard here is the only way a path reaches the file system.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path, PurePosixPath

from flux_azdo.errors import UserError

_BRANCH = re.compile(r"^(?!/|.*(?:\.\.|//|@\{|\.lock/|/\.|\.lock$))[^\x00-\x20\x7f~^:?*\[\\]+(?<![/.])$")


def check_branch_name(branch: str) -> None:
    """The rules of `git check-ref-format --branch`, checked before any process runs."""
    if not branch or branch.startswith(("-", ".")) or branch in ("@", "HEAD") or not _BRANCH.match(branch):
        raise UserError(f"{branch!r} is not a valid branch name: use a name such as main or flux/bootstrap")


def checkout_path(root: Path, relative: str) -> Path:
    """`relative` inside the checkout at `root`; UserError for a path that would leave it or touch `.git`."""
    if not relative or "\0" in relative or "\\" in relative:
        raise UserError(f"invalid path {relative!r} in the repository: use a relative path with '/'")
    pure = PurePosixPath(relative)
    if pure.is_absolute() or any(part in ("..", "") for part in pure.parts) or not pure.parts:
        raise UserError(f"path {relative!r} must be relative to the repository root, without '..'")
    if any(part.lower() == ".git" for part in pure.parts):
        raise UserError(f"path {relative!r} points into .git: choose a path outside it")
    path = root.joinpath(*pure.parts)
    parent = root
    for part in pure.parts[:-1]:
        parent = parent / part
        if parent.is_symlink():
            raise UserError(f"path {relative!r} goes through a symbolic link in the repository ({part})")
    return path


def write_file(root: Path, relative: str, content: str | None) -> str:
    """Write (or, with None, delete: a file or a whole folder) `relative` in the checkout; its posix path.

    Whatever is in the way is replaced: a folder where a file goes, a symbolic link (never followed).
    """
    path = checkout_path(root, relative)
    if content is None:
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.is_dir():
            shutil.rmtree(path)
    else:
        if path.is_symlink():
            path.unlink()
        elif path.is_dir():
            shutil.rmtree(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode("utf-8"))
    return path.relative_to(root).as_posix()
