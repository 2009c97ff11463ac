"""On-disk cache of downloaded distribution layers, keyed by registry, version and digest.

A cached layer is trusted only after its SHA-256 matches the digest in its file name,
so a truncated or tampered file is fetched again rather than used.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from urllib.parse import quote


def default_cache_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("flux-azdo")) / "flux-manifests"


class LayerCache:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _folder(self, registry: str, repository: str, version: str) -> Path:
        # Percent-encode so distinct registries never share a folder (`a:5000` vs `a_5000`).
        parts = [quote(p, safe="") for p in (registry, *repository.split("/"), version)]
        if any(p in ("", ".", "..") for p in parts):
            raise ValueError("unsafe cache key")
        return self.root.joinpath(*parts)

    def get(self, registry: str, repository: str, version: str) -> tuple[str, bytes] | None:
        """Return (digest, layer bytes) of a verified cached layer, if there is one."""
        folder = self._folder(registry, repository, version)
        if not folder.is_dir():
            return None
        for candidate in sorted(folder.glob("sha256-*.tar.gz")):
            expected = candidate.name[len("sha256-") : -len(".tar.gz")]
            try:
                data = candidate.read_bytes()
            except OSError:
                continue
            if hashlib.sha256(data).hexdigest() == expected:
                return f"sha256:{expected}", data
            candidate.unlink(missing_ok=True)
        return None

    def put(self, registry: str, repository: str, version: str, digest: str, data: bytes) -> None:
        folder = self._folder(registry, repository, version)
        tmp = None
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".partial-")
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, folder / f"{digest.replace(':', '-')}.tar.gz")
        except OSError:
            # A cache that cannot be written only costs a download next time.
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
