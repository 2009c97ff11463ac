"""The `--path` flag: where in the repository the cluster's manifests live.

Flux flattens `..` silently (securejoin); a path that tries to leave the repository is
almost always a mistake, so it is refused here with a message instead.
"""

from __future__ import annotations

import posixpath

from flux_azdo.errors import UserError


def repository_path(text: str) -> str:
    """Normalise `--path` to a clean relative POSIX path; '' means the repository root."""
    raw = text.strip()
    if "\\" in raw:
        raise UserError(f"--path={text!r} uses backslashes: write it with forward slashes, e.g. clusters/prod")
    if raw.startswith("/"):
        raise UserError(f"--path={text!r} is absolute: give a path relative to the repository root, e.g. clusters/prod")
    if raw in ("", ".", "./"):
        return ""
    normalised = posixpath.normpath(raw)
    if normalised == ".":
        return ""
    if normalised == ".." or normalised.startswith("../"):
        raise UserError(f"--path={text!r} points outside the repository: give a path inside it, e.g. clusters/prod")
    return normalised


def kustomization_path(relative: str) -> str:
    """The `spec.path` Flux writes into the Kustomization: `./` + the relative path."""
    return "./" + relative


def manifests_dir(relative: str, namespace: str) -> str:
    """`<path>/<namespace>`, the folder that holds gotk-components.yaml and friends."""
    return posixpath.join(relative, namespace) if relative else namespace
