"""source-controller's artifact storage: one `.tar.gz` per object and revision, addressed like Flux's.

An artifact is `<kind>/<namespace>/<name>/<commit>.tar.gz` under the storage root, advertised at
`http://<--storage-adv-addr>/<path>` with a `sha256:` digest of the archive and its size. kustomize-controller
(the Kustomization simulator) reads the archive back, checks the digest and unpacks it, so a Kustomization sees
exactly the files of the revision the GitRepository reports -- not whatever a later fetch left on disk.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import tarfile
import threading
from pathlib import Path

from flux_azdo.sandbox.flux.cluster import JSON
from flux_azdo.sandbox.flux.conditions import now_rfc3339


class ArtifactStorage:
    """Archives under `root`; safe for concurrent use by the two controllers."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()

    def archive(
        self, kind: str, namespace: str, name: str, revision: str, commit: str, source: Path, host: str
    ) -> JSON:
        """Pack `source` (without `.git`) and return the `status.artifact` describing it."""
        relative = f"{kind.lower()}/{namespace}/{name}/{commit}.tar.gz"
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.tmp")
        with tarfile.open(temporary, "w:gz") as archive:
            for path in sorted(source.rglob("*")):
                relative_path = path.relative_to(source)
                if relative_path.parts[0] == ".git":
                    continue
                info = archive.gettarinfo(str(path), arcname=relative_path.as_posix())
                info.mtime = 0
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                if info.isfile():
                    with path.open("rb") as stream:
                        archive.addfile(info, stream)
                else:
                    archive.addfile(info)
        data = temporary.read_bytes()
        os.replace(temporary, target)
        with self._lock:
            self._collect(target.parent, keep=target.name)
        return {
            "digest": f"sha256:{hashlib.sha256(data).hexdigest()}",
            "lastUpdateTime": now_rfc3339(),
            "path": relative,
            "revision": revision,
            "size": len(data),
            "url": f"http://{host}/{relative}",
        }

    def file_for(self, artifact: JSON) -> Path | None:
        relative = posixpath.normpath("/" + str(artifact.get("path") or "")).lstrip("/")
        if not relative:
            return None
        path = self.root / relative
        return path if path.is_file() else None

    def exists(self, artifact: JSON) -> bool:
        return self.file_for(artifact) is not None

    def verify(self, artifact: JSON) -> bool:
        path = self.file_for(artifact)
        if path is None:
            return False
        return f"sha256:{hashlib.sha256(path.read_bytes()).hexdigest()}" == artifact.get("digest")

    def extract(self, artifact: JSON, destination: Path) -> None:
        path = self.file_for(artifact)
        if path is None:
            raise FileNotFoundError(str(artifact.get("path")))
        destination.mkdir(parents=True, exist_ok=True)
        with tarfile.open(path, "r:gz") as archive:
            for member in archive.getmembers():
                name = posixpath.normpath(member.name)
                if name.startswith(("/", "..")) or not (member.isfile() or member.isdir()):
                    continue  # what securejoin and Flux's untar refuse: no escapes, no links
                target = destination / name
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                stream = archive.extractfile(member)
                if stream is not None:
                    with stream, target.open("wb") as out:
                        shutil.copyfileobj(stream, out)

    def remove(self, kind: str, namespace: str, name: str) -> None:
        """Garbage-collect every artifact of a deleted object."""
        with self._lock:
            shutil.rmtree(self.root / kind.lower() / namespace / name, ignore_errors=True)

    @staticmethod
    def _collect(directory: Path, keep: str) -> None:
        for entry in directory.iterdir():
            if entry.name != keep and entry.is_file():
                entry.unlink(missing_ok=True)
