"""Reading a manifests folder and writing planned files all-or-nothing; writing a private file (a secret).

The bootstrap files themselves must be read exactly: treating an unreadable
kustomization.yaml as absent would overwrite the user's file. Other files are only
looked at to list resources in a new kustomization.yaml, as Flux does.
Writes go to temporary files next to their targets; only when all are on disk are they
renamed into place, and a failure part-way restores what was there before.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from flux_azdo.errors import UserError

MAX_SCANNED_FILES = 2000
_TEMP_SUFFIX = ".flux-azdo.tmp"


def read_manifests_folder(folder: Path, owned: Iterable[str]) -> dict[str, str]:
    """Files under `folder` by POSIX relative path: every `owned` file that exists, and the
    other .yaml/.yml files (for resource discovery), skipping those that are not text."""
    found: dict[str, str] = {}
    for name in owned:
        path = folder / name
        if not path.exists():
            continue
        if not path.is_file():
            raise UserError(f"{path} is not a file: move it away and run again")
        try:
            found[name] = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise UserError(f"{path} is not UTF-8 text: save it as UTF-8; flux-azdo never rewrites it") from None
        except OSError as exc:
            raise UserError(f"cannot read {path} ({exc.strerror}): make it readable and run again") from None
    if not folder.is_dir():
        return found
    scanned = 0
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if relative in found or not relative.endswith((".yaml", ".yml")) or not path.is_file():
            continue
        scanned += 1
        if scanned > MAX_SCANNED_FILES:
            break
        with contextlib.suppress(UnicodeDecodeError, OSError):
            found[relative] = path.read_text(encoding="utf-8")
    return found


def _new_file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_files_atomically(root: Path, contents: Mapping[str, str]) -> None:
    """Write every `relative path -> text` under `root`, or leave everything as it was."""
    for relative in contents:
        if (root / relative).is_dir():
            raise UserError(f"cannot write {root / relative}: it is a folder; move it away and run again")
    staged: list[tuple[str, Path]] = []
    replaced: list[tuple[Path, bytes | None]] = []
    created: list[Path] = []
    try:
        for relative, text in contents.items():
            target = root / relative
            created += [p for p in reversed(target.parents) if not p.exists()]
            target.parent.mkdir(parents=True, exist_ok=True)
            mode = stat.S_IMODE(target.stat().st_mode) if target.exists() else _new_file_mode()
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=_TEMP_SUFFIX)
            staged.append((tmp, target))
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, mode)
        for tmp, target in staged:
            previous = target.read_bytes() if target.exists() else None
            os.replace(tmp, target)
            replaced.append((target, previous))
    except BaseException as exc:
        for tmp, _ in staged:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        for target, previous in reversed(replaced):
            with contextlib.suppress(OSError):
                if previous is None:
                    target.unlink()
                else:
                    target.write_bytes(previous)
        for folder in reversed(created):
            with contextlib.suppress(OSError):
                folder.rmdir()
        if isinstance(exc, OSError):
            raise UserError(
                f"cannot write under {root}: {exc.strerror or exc}; check the folder's permissions"
            ) from None
        raise


def write_private_file(path: Path, data: bytes, mode: int = 0o600) -> Path:
    """Write `data` to `path` with `mode` (0600: a key, a token, a kubeconfig), for a private folder of the caller's.

    The bytes go to a new file next to it that `tempfile.mkstemp` creates 0600 with O_EXCL and O_NOFOLLOW (nobody
    else can read it from its first byte, and no link planted there is followed); it is then renamed over `path`
    (a rename replaces a link, never writes through it), so `path` is never seen half written and may exist.
    """
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=_TEMP_SUFFIX)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return path
