"""An anonymous OCI distribution client for Flux's manifests artifact.

The flow is the standard one: ask for the manifest, answer the registry's Bearer
challenge with an anonymous token, download the layer by digest and verify it. Only
`requests` is needed, and it is imported on first use so the CLI starts fast.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urljoin, urlsplit

from flux_azdo import __version__
from flux_azdo.errors import UserError
from flux_azdo.manifests.versions import FluxVersion
from flux_azdo.registry.cache import LayerCache, default_cache_dir

if TYPE_CHECKING:
    import requests

DEFAULT_MANIFESTS_REPOSITORY = "oci://ghcr.io/fluxcd/flux-manifests"
OCI_MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
FLUX_CONTENT_LAYER = "application/vnd.cncf.flux.content.v1.tar+gzip"
MAX_LAYER_BYTES = 64 * 1024 * 1024
MAX_DOCUMENT_BYTES = 4 * 1024 * 1024
_LOOPBACK = ("localhost", "127.0.0.1", "[::1]")
_OFFLINE_HINT = (
    "on a machine without access to it, pass --manifests with a gotk-components.yaml, a folder holding it "
    "or a .tar.gz (for example the output of `flux install --export`)"
)


@dataclass(frozen=True)
class OciRepository:
    """`oci://host[:port]/path`; loopback registries are spoken to over plain http, as Docker does."""

    registry: str
    repository: str

    @classmethod
    def parse(cls, text: str) -> OciRepository:
        if "@" in text.split("/", 3)[2 if text.lower().startswith("oci://") else 0]:
            raise UserError(
                "credentials in an oci:// reference are not supported: flux-azdo pulls anonymously; "
                "use a registry that allows anonymous pull, or --manifests with a local file"
            )
        tagged = re.match(r"^(oci://.+/[^/:]+):([A-Za-z0-9_.-]+)$", text, flags=re.I)
        if tagged:
            raise UserError(f"{text!r} names a tag: pass --manifests {tagged.group(1)} and the tag with --version")
        match = re.match(r"^oci://([^/\s]+)/([a-z0-9]+(?:[._/-][a-z0-9]+)*)$", text, flags=re.I)
        if match is None:
            raise UserError(
                f"{text!r} is not an OCI repository: use oci://registry/repository, e.g. {DEFAULT_MANIFESTS_REPOSITORY}"
            )
        return cls(match.group(1).lower(), match.group(2))

    @property
    def base_url(self) -> str:
        host = (
            self.registry.rsplit(":", 1)[0] if not self.registry.startswith("[") else self.registry.split("]")[0] + "]"
        )
        scheme = "http" if host in _LOOPBACK or host.startswith("127.") else "https"
        return f"{scheme}://{self.registry}/v2/{self.repository}"

    def __str__(self) -> str:
        return f"oci://{self.registry}/{self.repository}"


@dataclass(frozen=True)
class FetchedLayer:
    version: str
    digest: str
    data: bytes
    from_cache: bool
    origin: str


class DistributionFetcher(Protocol):
    """Anything that can hand over the distribution layer of a Flux version."""

    def fetch(self, version: str) -> FetchedLayer: ...


def _parse_challenge(header: str) -> dict[str, str]:
    return dict(re.findall(r'(\w+)="([^"]*)"', header))


class OciDistributionFetcher:
    """Pulls `<repository>:<version>` anonymously and caches the layer by version and digest."""

    def __init__(self, repository: OciRepository, cache: LayerCache | None = None, timeout: float = 30.0) -> None:
        self.repository = repository
        self.cache = cache if cache is not None else LayerCache(default_cache_dir())
        self.timeout = timeout
        self._session: requests.Session | None = None
        self._token: str | None = None

    # -- HTTP ---------------------------------------------------------------------------------
    def _http(self) -> requests.Session:
        if self._session is None:
            import requests

            self._session = requests.Session()
            self._session.headers["User-Agent"] = f"flux-azdo/{__version__}"
        return self._session

    def _unreachable(self, what: str, exc: Exception) -> UserError:
        reason = type(exc).__name__
        return UserError(f"cannot reach the registry {self.repository.registry} to {what} ({reason}); {_OFFLINE_HINT}")

    def _get(self, url: str, what: str, accept: str | None = None, stream: bool = False) -> requests.Response:
        import requests

        headers = {"Accept": accept} if accept else {}
        try:
            for _ in range(2):
                if self._token and urlsplit(url).netloc == self.repository.registry:
                    headers["Authorization"] = f"Bearer {self._token}"
                else:
                    headers.pop("Authorization", None)
                response = self._http().get(url, headers=headers, timeout=self.timeout, stream=stream)
                challenge = response.headers.get("WWW-Authenticate", "")
                if response.status_code == 401 and challenge.lower().startswith("bearer") and not self._token:
                    self._token = self._anonymous_token(_parse_challenge(challenge), what)
                    continue
                return response
        except requests.RequestException as exc:
            raise self._unreachable(what, exc) from None
        raise UserError(
            f"the registry {self.repository.registry} refused anonymous access to {self.repository}; {_OFFLINE_HINT}"
        )

    def _anonymous_token(self, challenge: dict[str, str], what: str) -> str:
        realm = challenge.get("realm")
        if not realm:
            raise UserError(
                f"the registry {self.repository.registry} asked for credentials without a token realm; {_OFFLINE_HINT}"
            )
        params = {"scope": challenge.get("scope", f"repository:{self.repository.repository}:pull")}
        if "service" in challenge:
            params["service"] = challenge["service"]
        response = self._http().get(realm, params=params, timeout=self.timeout)
        body: Any = self._json(response, what) if response.ok else {}
        token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if not token:
            raise UserError(
                f"the registry {self.repository.registry} gave no anonymous token (HTTP {response.status_code}) "
                f"to {what}; {_OFFLINE_HINT}"
            )
        return str(token)

    def _json(self, response: requests.Response, what: str) -> Any:
        """The body as JSON; a proxy or captive portal answering HTML is a user-environment problem."""
        if len(response.content) > MAX_DOCUMENT_BYTES:
            raise UserError(
                f"the registry {self.repository.registry} sent more than 4 MiB when asked to {what}; {_OFFLINE_HINT}"
            )
        try:
            return response.json()
        except ValueError:
            kind = response.headers.get("Content-Type", "no content type").split(";")[0]
            raise UserError(
                f"the registry {self.repository.registry} answered with {kind}, not JSON, when asked to {what} "
                f"(is a proxy or captive portal in the way?); {_OFFLINE_HINT}"
            ) from None

    def _fail(self, response: requests.Response, what: str) -> UserError:
        return UserError(
            f"the registry {self.repository.registry} answered HTTP {response.status_code} when asked to {what}; "
            f"try again later, or {_OFFLINE_HINT}"
        )

    # -- Versions -----------------------------------------------------------------------------
    def latest_version(self) -> str:
        """The highest release tag (no pre-releases), following the tag list's pagination."""
        what = f"list the Flux versions in {self.repository}"
        url: str | None = f"{self.repository.base_url}/tags/list?n=1000"
        best: FluxVersion | None = None
        pages = 0
        while url and pages < 100:
            pages += 1
            response = self._get(url, what)
            if not response.ok:
                raise self._fail(response, what)
            body = self._json(response, what)
            tags = body.get("tags") if isinstance(body, dict) else None
            for tag in tags if isinstance(tags, list) else []:
                if not isinstance(tag, str):
                    continue
                try:
                    version = FluxVersion.parse(tag)
                except UserError:
                    continue
                if version.is_release and (best is None or version > best):
                    best = version
            link = re.search(r'<([^>]+)>;\s*rel="?next"?', response.headers.get("Link", ""))
            url = urljoin(url, link.group(1)) if link else None
        if best is None:
            raise UserError(f"{self.repository} has no release tags: pass --version explicitly")
        return best.text

    # -- Fetch --------------------------------------------------------------------------------
    def fetch(self, version: str) -> FetchedLayer:
        if version == "latest":
            version = self.latest_version()
        FluxVersion.parse(version)
        origin = f"{self.repository}:{version}"
        cached = self.cache.get(self.repository.registry, self.repository.repository, version)
        if cached is not None:
            return FetchedLayer(version, cached[0], cached[1], True, origin)
        what = f"download Flux {version}"
        response = self._get(
            f"{self.repository.base_url}/manifests/{version}", what, accept=", ".join(OCI_MANIFEST_TYPES)
        )
        if response.status_code == 404:
            raise UserError(f"Flux {version} is not in {self.repository}: check --version against the Flux releases")
        if not response.ok:
            raise self._fail(response, what)
        manifest = self._json(response, what)
        listed = manifest.get("layers") if isinstance(manifest, dict) else None
        layers = [x for x in listed if isinstance(x, dict)] if isinstance(listed, list) else []
        layer = next((x for x in layers if x.get("mediaType") == FLUX_CONTENT_LAYER), layers[0] if layers else None)
        if not layer or not str(layer.get("digest", "")).startswith("sha256:"):
            raise UserError(f"{origin} is not a Flux manifests artifact (no sha256 layer); {_OFFLINE_HINT}")
        digest = str(layer["digest"])
        data = self._download(f"{self.repository.base_url}/blobs/{digest}", digest, what)
        self.cache.put(self.repository.registry, self.repository.repository, version, digest, data)
        return FetchedLayer(version, digest, data, False, origin)

    def _download(self, url: str, digest: str, what: str) -> bytes:
        import requests

        response = self._get(url, what, stream=True)
        if not response.ok:
            raise self._fail(response, what)
        hasher = hashlib.sha256()
        chunks = []
        size = 0
        try:
            for chunk in response.iter_content(64 * 1024):
                size += len(chunk)
                if size > MAX_LAYER_BYTES:
                    raise UserError(f"the layer {digest} is larger than 64 MiB: this is not a Flux manifests artifact")
                hasher.update(chunk)
                chunks.append(chunk)
        except requests.RequestException as exc:
            raise self._unreachable(what, exc) from None
        if f"sha256:{hasher.hexdigest()}" != digest:
            raise UserError(
                f"the layer downloaded from {self.repository.registry} does not match its digest {digest}: "
                "the download was corrupted or tampered with; try again"
            )
        return b"".join(chunks)
