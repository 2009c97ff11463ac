"""Private temporary folders that are never left behind, wherever an exception lands.

KeyboardInterrupt, and the exceptions a program raises from its SIGTERM/SIGHUP handlers (the flux-azdo CLI does),
come out of the signal handler between any two steps of the main thread: also between `tempfile.mkdtemp()`
creating a folder and its caller registering the removal, and between a constructor returning and `with` taking
the object over. `flux-azdo demo` left its clone's folder behind the first way, one Ctrl-C in four. So a
`PrivateFolder` arranges its removal before the folder exists: a finalizer owning the list of what it created is
registered first, then a name is chosen, listed and created. `remove()` removes it; an object dropped without
that (an exception between a constructor returning and `with`) removes it when it is collected, in CPython as the
exception leaves the frame, and at the latest when the interpreter exits. An interrupt that lands while the folder
is being removed goes on once the removal is done.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import shutil
import tempfile
import weakref
from pathlib import Path

from flux_azdo.git._shield import run_to_the_end

#: Names are random (64 bits): a name already taken is tried again with another one, this many times.
_NAME_ATTEMPTS = 100


class PrivateFolder:
    """A new 0700 folder `<parent>/<prefix><random>` (parent: the temporary folder), removed by `remove()`."""

    def __init__(self, prefix: str, parent: Path | None = None) -> None:
        self._created: list[Path] = []  # what to remove: the folder, once it exists (or is about to)
        self._finalizer = weakref.finalize(self, _remove_all, self._created)
        try:
            if parent is not None:
                Path(parent).mkdir(parents=True, exist_ok=True)  # the caller's folder: created, never removed
            base = os.path.abspath(tempfile.gettempdir() if parent is None else parent)
            self.path = _create(Path(base), prefix, self._created)
        except BaseException:
            self.remove()
            raise

    def remove(self) -> None:
        """Remove the folder and everything in it; safe to call twice. The removal runs to the end whatever
        exception arrives meanwhile (`_shield`), and the exception goes on afterwards."""
        try:
            run_to_the_end(functools.partial(_remove_all, self._created))
        finally:
            if not self._created:
                self._finalizer.detach()


def _create(base: Path, prefix: str, created: list[Path]) -> Path:
    for _ in range(_NAME_ATTEMPTS):
        path = base / f"{prefix}{secrets.token_hex(8)}"
        created.append(path)  # listed first: an exception right after mkdir still finds it
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            created.pop()  # someone else's: never removed (no call can be interrupted before this one)
            continue
        return path
    raise FileExistsError(f"no free name for a temporary folder in {base}: clean it up or point TMPDIR elsewhere")


def _remove_all(paths: list[Path]) -> None:
    while paths:
        remove_tree(paths[-1])
        paths.pop()


def remove_tree(directory: Path) -> None:
    """Remove a folder of ours; git's read-only object files need no special care (the folder is ours)."""
    shutil.rmtree(directory, ignore_errors=True)
    if directory.exists():  # a folder made read-only by something we ran: make it writable and try again
        for folder, _, _ in os.walk(directory):
            with contextlib.suppress(OSError):
                os.chmod(folder, 0o700)
        shutil.rmtree(directory, ignore_errors=True)
