"""A small OCI registry on loopback that speaks ghcr.io's wire format, for the registry tests.

The product's `OciDistributionFetcher` must work against ghcr.io, which we cannot reach
from the tests. This fake follows the same protocol so that the real client code
(`requests`, the Bearer challenge, the blob redirect, the tag pagination) is exercised:

* every `/v2/...` request without a valid token is answered 401 with a
  `WWW-Authenticate: Bearer realm=...,service=...,scope=...` challenge, as ghcr.io does
  even for public images;
* `GET /token?scope=...&service=...` hands out an anonymous token as `{"token": ...}`;
* manifests are OCI image manifests in the shape `flux push artifact` produces
  (Flux config media type, one `tar+gzip` content layer);
* `GET /v2/<repo>/blobs/<digest>` is a 307 to a storage path that serves the bytes
  without auth (ghcr.io redirects to pkg-containers.githubusercontent.com);
* `GET /v2/<repo>/tags/list` is paginated with a `Link: <...>; rel="next"` header;
* errors carry the distribution spec's `{"errors": [{"code", "message"}]}` body.

Every request is logged, so tests can tell whether the product hit the network at all.
The server binds 127.0.0.1 on a port chosen by the OS and must be stopped with `stop()`
(or used as a context manager), which also joins every handler thread.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import secrets
import tarfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qs, quote, urlsplit

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
FLUX_CONFIG = "application/vnd.cncf.flux.config.v1+json"
FLUX_CONTENT_LAYER = "application/vnd.cncf.flux.content.v1.tar+gzip"
SAMPLE_VERSION_HEADER = "# Flux Version: v0.0.0-sample"
# ghcr.io caps the page size; 2 keeps the pages small enough that any realistic tag set spans several.
TAGS_PAGE_SIZE = 2

_MANIFEST_PATH = re.compile(r"^/v2/(?P<repo>.+)/manifests/(?P<reference>[^/]+)$")
_BLOB_PATH = re.compile(r"^/v2/(?P<repo>.+)/blobs/(?P<digest>sha256:[0-9a-f]{64})$")
_TAGS_PATH = re.compile(r"^/v2/(?P<repo>.+)/tags/list$")
_STORAGE_PATH = re.compile(r"^/storage/(?P<hex>[0-9a-f]{64})$")


def sha256_digest(data: bytes) -> str:
    """The content address of a blob, as it appears in manifests and blob URLs."""
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def build_flux_layer(components_yaml: str) -> bytes:
    """A content layer laid out as `flux push artifact --path=./flux-system` does.

    The tarball holds a `.` directory entry and `gotk-components.yaml` at the top (no
    `flux-system/` prefix). Timestamps and owners are zeroed, as Flux does, so the same
    text always gives the same digest.
    """
    payload = components_yaml.encode("utf-8")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        root = tarfile.TarInfo(".")
        root.type = tarfile.DIRTYPE
        root.mode = 0o755
        archive.addfile(root)
        member = tarfile.TarInfo("gotk-components.yaml")
        member.size = len(payload)
        member.mode = 0o644
        archive.addfile(member, io.BytesIO(payload))
    return gzip.compress(raw.getvalue(), mtime=0)


def relabel_sample(sample_text: str, version: str) -> str:
    """The sample distribution with its `# Flux Version:` header saying `version`.

    The product checks that the header version equals the tag it pulled, so every tag
    other than the sample's own needs a layer whose header names that tag.
    """
    if SAMPLE_VERSION_HEADER not in sample_text:
        raise ValueError("the sample distribution no longer has the expected version header")
    return sample_text.replace(SAMPLE_VERSION_HEADER, f"# Flux Version: {version}", 1)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the registry saw it; header names are lower-cased."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")


@dataclass
class _Repository:
    manifests: dict[str, bytes] = field(default_factory=dict)  # tag -> manifest JSON
    layer_digests: dict[str, str] = field(default_factory=dict)  # tag -> content layer digest


class FakeOciRegistry:
    """An anonymous-pull OCI registry on 127.0.0.1, with the ghcr.io token dance."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._repositories: dict[str, _Repository] = {}
        self._blobs: dict[str, bytes] = {}  # digest -> bytes
        self._tokens: set[str] = set()
        self._log: list[RecordedRequest] = []
        self.corrupt_blobs = False
        """When set, storage serves bytes that do not match the requested digest (a tampered download)."""
        self.captive_portal = False
        """When set, every request gets a 200 HTML page, as behind a captive portal or a misconfigured proxy."""
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        # Join handler threads on close: each request is HTTP/1.0 (one per connection), so they end promptly.
        self._server.daemon_threads = False
        self._server.block_on_close = True
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def oci_url(self, repository: str) -> str:
        return f"oci://{self.host}/{repository}"

    def start(self) -> FakeOciRegistry:
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-oci-registry", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the socket and wait for every thread the server started."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> FakeOciRegistry:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- content --------------------------------------------------------------------------------
    def push(self, repository: str, tag: str, layer: bytes) -> str:
        """Publish `layer` as the Flux artifact `repository:tag`; returns the layer digest."""
        config = b"{}"
        layer_digest = sha256_digest(layer)
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": FLUX_CONFIG, "digest": sha256_digest(config), "size": len(config)},
            "layers": [{"mediaType": FLUX_CONTENT_LAYER, "digest": layer_digest, "size": len(layer)}],
            "annotations": {
                "org.opencontainers.image.created": "2024-01-01T00:00:00Z",
                "org.opencontainers.image.revision": f"{tag}@sha1:0000000000000000000000000000000000000000",
                "org.opencontainers.image.source": "https://github.com/fluxcd/flux2",
            },
        }
        with self._lock:
            repo = self._repositories.setdefault(repository, _Repository())
            repo.manifests[tag] = json.dumps(manifest, separators=(",", ":")).encode()
            repo.layer_digests[tag] = layer_digest
            self._blobs[sha256_digest(config)] = config
            self._blobs[layer_digest] = layer
        return layer_digest

    def layer_digest(self, repository: str, tag: str) -> str:
        with self._lock:
            return self._repositories[repository].layer_digests[tag]

    # -- observation ----------------------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._log)

    def requests_to(self, pattern: str) -> list[RecordedRequest]:
        """Logged requests whose path matches the regular expression `pattern` (from the start)."""
        return [r for r in self.requests if re.match(pattern, r.path)]

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    # -- HTTP -----------------------------------------------------------------------------------
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        registry = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "fake-oci-registry/1.0"

            def do_GET(self) -> None:
                registry._handle(self)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the request log is kept in memory for the tests instead."""

        return Handler

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        query = parse_qs(url.query)
        record = RecordedRequest(handler.command, url.path, query, {k.lower(): v for k, v in handler.headers.items()})
        with self._lock:
            self._log.append(record)
        if self.captive_portal:
            _send(handler, 200, b"<html><body>Sign in to the guest network</body></html>", "text/html")
            return
        if url.path == "/token":
            self._token(handler, query)
            return
        storage = _STORAGE_PATH.match(url.path)
        if storage:
            self._storage(handler, f"sha256:{storage['hex']}")
            return
        if not url.path.startswith("/v2/"):
            _error(handler, 404, "NOT_FOUND", "not found")
            return
        repo_name = next(
            (m["repo"] for p in (_MANIFEST_PATH, _BLOB_PATH, _TAGS_PATH) if (m := p.match(url.path))), None
        )
        if repo_name is None:
            _error(handler, 404, "NOT_FOUND", "not found")
            return
        if not self._authorized(record):
            self._challenge(handler, repo_name)
            return
        with self._lock:
            repo = self._repositories.get(repo_name)
        if repo is None:
            _error(handler, 404, "NAME_UNKNOWN", "repository name not known to registry")
            return
        if m := _MANIFEST_PATH.match(url.path):
            self._manifest(handler, repo, m["reference"], record.headers.get("accept", ""))
        elif m := _BLOB_PATH.match(url.path):
            self._blob_redirect(handler, m["digest"])
        else:
            self._tags(handler, repo_name, repo, query)

    def _authorized(self, record: RecordedRequest) -> bool:
        scheme, _, token = (record.authorization or "").partition(" ")
        with self._lock:
            return scheme.lower() == "bearer" and token in self._tokens

    def _challenge(self, handler: BaseHTTPRequestHandler, repo_name: str) -> None:
        challenge = f'Bearer realm="http://{self.host}/token",service="{self.host}",scope="repository:{repo_name}:pull"'
        _error(handler, 401, "UNAUTHORIZED", "authentication required", {"WWW-Authenticate": challenge})

    def _token(self, handler: BaseHTTPRequestHandler, query: dict[str, list[str]]) -> None:
        """Anonymous tokens are only given for a pull scope and this registry's service, as ghcr.io does."""
        scopes = query.get("scope", [])
        services = query.get("service", [])
        if services != [self.host] or len(scopes) != 1 or not re.fullmatch(r"repository:[^:]+:pull", scopes[0]):
            _error(handler, 401, "DENIED", "requested access to the resource is denied")
            return
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens.add(token)
        _send(handler, 200, json.dumps({"token": token}).encode(), "application/json")

    def _manifest(self, handler: BaseHTTPRequestHandler, repo: _Repository, reference: str, accept: str) -> None:
        with self._lock:
            manifest = repo.manifests.get(reference)
        if manifest is None:
            _error(handler, 404, "MANIFEST_UNKNOWN", "manifest unknown")
            return
        accepted = {part.split(";")[0].strip() for part in accept.split(",")}
        if OCI_MANIFEST not in accepted:
            # ghcr.io's answer when the client cannot take the manifest's media type.
            _error(
                handler, 404, "MANIFEST_UNKNOWN", "OCI manifest found, but accept header does not support OCI manifests"
            )
            return
        _send(handler, 200, manifest, OCI_MANIFEST, {"Docker-Content-Digest": sha256_digest(manifest)})

    def _blob_redirect(self, handler: BaseHTTPRequestHandler, digest: str) -> None:
        with self._lock:
            known = digest in self._blobs
        if not known:
            _error(handler, 404, "BLOB_UNKNOWN", "blob unknown to registry")
            return
        location = f"http://{self.host}/storage/{digest.removeprefix('sha256:')}"
        _send(handler, 307, b"", "text/plain", {"Location": location})

    def _storage(self, handler: BaseHTTPRequestHandler, digest: str) -> None:
        """The blob store behind the redirect: no auth, just bytes (possibly corrupted on purpose)."""
        with self._lock:
            data = self._blobs.get(digest)
            corrupt = self.corrupt_blobs
        if data is None:
            _send(handler, 404, b"not found", "text/plain")
            return
        if corrupt:
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        _send(handler, 200, data, "application/octet-stream")

    def _tags(
        self, handler: BaseHTTPRequestHandler, repo_name: str, repo: _Repository, query: dict[str, list[str]]
    ) -> None:
        """Tags in lexical order, at most TAGS_PAGE_SIZE per page, continued from `last`, as the spec says."""
        with self._lock:
            tags = sorted(repo.manifests)
        last = query.get("last", [""])[0]
        try:
            asked = int(query.get("n", [str(TAGS_PAGE_SIZE)])[0])
        except ValueError:
            _error(handler, 400, "PAGINATION_NUMBER_INVALID", "invalid number of results requested")
            return
        remaining = [t for t in tags if t > last] if last else tags
        page = remaining[: max(0, min(asked, TAGS_PAGE_SIZE))]
        headers = {}
        if page and len(remaining) > len(page):
            next_url = f"/v2/{repo_name}/tags/list?n={TAGS_PAGE_SIZE}&last={quote(page[-1])}"
            headers["Link"] = f'<{next_url}>; rel="next"'
        body = json.dumps({"name": repo_name, "tags": page}).encode()
        _send(handler, 200, body, "application/json", headers)


def _send(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: bytes,
    content_type: str,
    headers: dict[str, str] | None = None,
) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(body)


def _error(
    handler: BaseHTTPRequestHandler, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> None:
    """An error in the distribution spec's shape: `{"errors": [{"code": ..., "message": ...}]}`."""
    body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
    _send(handler, status, body, "application/json", headers)
