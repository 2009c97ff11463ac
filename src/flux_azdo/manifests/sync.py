"""gotk-sync.yaml: the GitRepository and Kustomization that make the cluster follow Git.

Byte-identical to Flux's `sync.Generate` (keys in go-yaml order, Go durations), with two
additions Flux lacks: `--name` for object names other than the namespace
(fluxcd/flux2#4199) and `--provider azure` for Azure DevOps workload identity.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, unquote, urlsplit

from flux_azdo.errors import UserError
from flux_azdo.manifests.distribution import GENERATED_WARNING
from flux_azdo.manifests.durations import flux_interval
from flux_azdo.manifests.flags import reject_control_characters, validate_namespace, validate_object_name
from flux_azdo.manifests.goyaml import scalar
from flux_azdo.manifests.install import DEFAULT_NAMESPACE
from flux_azdo.manifests.paths import kustomization_path, repository_path
from flux_azdo.redaction import redact_url

KUSTOMIZATION_INTERVAL = "10m0s"
PROVIDERS = ("generic", "azure")
_SCP_LIKE = re.compile(r"^(?:(?P<user>[^@/:]+)@)?(?P<host>[^@/:\[\]]+):(?P<path>[^/].*|/.*)$")
_BAD_REF_CHARS = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
# What Go's url package leaves unescaped in a path (unreserved characters and $&+,/:;=@).
_PATH_SAFE_SPECIAL = "-_.~$&+,/:;=@"
_PATH_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789" + _PATH_SAFE_SPECIAL)
_USERNAME = re.compile(r"^[A-Za-z0-9._-]+$")
_URL_SCHEMES = frozenset({"http", "https", "ssh", "git", "file", "ftp", "ftps"})

Transport = Literal["https", "http", "ssh"]


@dataclass(frozen=True)
class SyncOptions:
    """The `flux bootstrap git` flags that shape gotk-sync.yaml, with Flux's defaults."""

    url: str
    branch: str = "main"
    path: str = ""
    interval: str = "1m"
    namespace: str = DEFAULT_NAMESPACE
    name: str | None = None
    secret_name: str = "flux-system"
    recurse_submodules: bool = False
    sparse_checkout: tuple[str, ...] = ()
    provider: str = "generic"
    username: str = "git"
    ssh_hostname: str = ""
    allow_insecure_http: bool = False

    @property
    def object_name(self) -> str:
        return self.name or self.namespace


@dataclass(frozen=True)
class SyncTarget:
    """The repository as the cluster will reach it."""

    url: str
    transport: Transport
    host: str
    port: int | None


def validate_branch(branch: str) -> None:
    bad = (
        not branch
        or branch.startswith(("-", "/", "."))
        or branch.endswith(("/", ".", ".lock"))
        or ".." in branch
        or "//" in branch
        or "@{" in branch
        or "/." in branch
        or _BAD_REF_CHARS.search(branch) is not None
    )
    if bad:
        raise UserError(f"--branch={branch!r} is not a valid Git branch name: use a name such as main")


def _valid_encoded(path: str) -> bool:
    return all(c in _PATH_SAFE or c in "!'()*[]%" for c in path)


def go_escaped_path(raw: str) -> str:
    """The path as Go's `url.URL.String()` writes it: kept when validly encoded, else percent-encoded."""
    if _valid_encoded(raw) and not re.search(r"%(?![0-9A-Fa-f]{2})", raw):
        return raw
    if re.search(r"%(?![0-9A-Fa-f]{2})", raw):
        raise UserError(f"--url has an invalid percent escape in {raw!r}: write a space as %20, a % as %25")
    return quote(unquote(raw), safe=_PATH_SAFE_SPECIAL)


def _parse_ssh_hostname(value: str) -> tuple[str, str, int | None]:
    """`--ssh-hostname host[:port]`, as the cluster should reach the SSH server."""
    reject_control_characters(value, "--ssh-hostname")
    parts = urlsplit(f"ssh://{value}")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if not parts.hostname or parts.username is not None or parts.path or port == -1 or port == 0:
        raise UserError(f"--ssh-hostname={value!r} must be host or host:port (port 1-65535), e.g. ssh.example.com:2222")
    return parts.netloc, parts.hostname, port


def resolve_sync_target(opts: SyncOptions) -> SyncTarget:
    """Apply Flux's URL rules: token auth drops the user and keeps https; SSH becomes ssh://user@host/path."""
    shown = redact_url(opts.url)
    reject_control_characters(opts.url, "--url")
    raw = opts.url.strip()
    scp = None if "://" in raw else _SCP_LIKE.match(raw)
    if scp is not None and (scp.group("host").lower() in _URL_SCHEMES or "@" in scp.group("path").partition("/")[0]):
        # `https:/host/...` (a slash short) or `user:password@host/...`: neither is scp-like syntax.
        raise UserError(f"--url {shown!r} is not a valid URL: write https://host/path or ssh://user@host/path")
    if scp is not None:
        path = scp.group("path")
        raw = f"ssh://{scp.group('user') + '@' if scp.group('user') else ''}{scp.group('host')}/{path.lstrip('/')}"
    try:
        parts = urlsplit(raw)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        raise UserError(f"--url {shown!r} is not a valid URL (check the host and port): give the clone URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http", "ssh"):
        raise UserError(
            f"--url {shown!r}: scheme {scheme or 'none'!r} is not supported; use https://host/path (token) "
            "or ssh://git@host/path (SSH key)"
        )
    if not host or parts.path in ("", "/"):
        raise UserError(f"--url {shown!r} names no host or repository: give the repository's clone URL")
    hostport = parts.netloc.rpartition("@")[2]
    suffix = go_escaped_path(parts.path)
    suffix += (f"?{parts.query}" if parts.query else "") + (f"#{parts.fragment}" if parts.fragment else "")
    if scheme in ("https", "http"):
        if scheme == "http" and not opts.allow_insecure_http:
            raise UserError(
                f"--url {shown!r} uses http, which sends the token in clear text: use https, "
                "or pass --allow-insecure-http for a test server"
            )
        return SyncTarget(f"{scheme}://{hostport}{suffix}", "https" if scheme == "https" else "http", host, port)
    if not _USERNAME.match(opts.username):
        raise UserError(
            f"--username={opts.username!r} is not a valid SSH user name: use letters, digits, '.', '_' or '-'"
        )
    user = opts.username if (parts.username is None or opts.username != "git") else parts.username
    if opts.ssh_hostname:
        hostport, host, port = _parse_ssh_hostname(opts.ssh_hostname)
    return SyncTarget(f"ssh://{user}@{hostport}{suffix}", "ssh", host, port)


def _path_names(target: SyncTarget) -> list[str]:
    """The decoded, non-empty segments of the target's path (no query, no fragment)."""
    return [unquote(name) for name in urlsplit(target.url).path.split("/") if name]


def is_azure_devops_repository(target: SyncTarget) -> bool:
    """Whether the URL has the path of an Azure DevOps repository, whatever the host.

    Azure DevOps Services, Azure DevOps Server and the sandbox that stands in for them on 127.0.0.1 share the
    path shapes: `<collection>[/<project>]/_git/<repo>` over https (and SSH on Server), and over SSH also
    `v3/<org>/<project>/<repo>` or the older `<project>/_ssh/<repo>`. The host alone cannot tell (a Server has
    any name), and the azdo URL parser is not for the pure generators, so this is the shape check they need.
    """
    names = _path_names(target)
    lowered = [name.lower() for name in names]
    markers = ("_git", "_ssh") if target.transport == "ssh" else ("_git",)
    # The marker, with at least one name (organization or collection) before it and exactly the repository after.
    if len(names) >= 3 and lowered[-2] in markers:
        return True
    return target.transport == "ssh" and len(names) == 4 and lowered[0] == "v3"


def validate_sync(opts: SyncOptions) -> tuple[SyncTarget, str, str]:
    """Check every sync flag; return the target, the Go interval and the normalised path."""
    validate_namespace(opts.namespace)
    if opts.name is not None:
        validate_object_name(opts.name, "--name")
    validate_object_name(opts.secret_name, "--secret-name")
    validate_branch(opts.branch)
    interval = flux_interval(opts.interval)
    reject_control_characters(opts.path, "--path")
    path = repository_path(opts.path)
    for sparse in opts.sparse_checkout:
        reject_control_characters(sparse, "--sparse-checkout")
        repository_path(sparse)
    if opts.provider not in PROVIDERS:
        raise UserError(f"--provider={opts.provider!r} is not supported: use one of {', '.join(PROVIDERS)}")
    target = resolve_sync_target(opts)
    if opts.provider == "azure":
        if target.transport == "ssh":
            raise UserError(
                "--provider azure needs the https URL of the repository, not an ssh one: source-controller gets a "
                "workload identity token for Azure DevOps' https endpoint; use "
                "https://dev.azure.com/<org>/<project>/_git/<repo>"
            )
        if not is_azure_devops_repository(target):
            raise UserError(
                f"--provider azure works only with Azure DevOps repository URLs (<org>/<project>/_git/<repo>), not "
                f"{redact_url(target.url)}: use https://dev.azure.com/<org>/<project>/_git/<repo>, or drop "
                "--provider azure"
            )
    return target, interval, path


def generate_sync(opts: SyncOptions) -> str:
    """Render gotk-sync.yaml exactly as `flux bootstrap` writes it."""
    target, interval, path = validate_sync(opts)
    name, ns = scalar(opts.object_name), scalar(opts.namespace)
    spec = [f"  interval: {interval}"]
    if opts.provider == "azure":
        spec.append("  provider: azure")
    if opts.recurse_submodules:
        spec.append("  recurseSubmodules: true")
    spec += ["  ref:", f"    branch: {scalar(opts.branch)}"]
    if opts.provider != "azure":
        spec += ["  secretRef:", f"    name: {scalar(opts.secret_name)}"]
    if opts.sparse_checkout:
        spec.append("  sparseCheckout:")
        spec += [f"  - {scalar(repository_path(p))}" for p in opts.sparse_checkout]
    spec.append(f"  url: {scalar(target.url)}")
    lines = [
        GENERATED_WARNING,
        "---",
        "apiVersion: source.toolkit.fluxcd.io/v1",
        "kind: GitRepository",
        "metadata:",
        f"  name: {name}",
        f"  namespace: {ns}",
        "spec:",
        *spec,
        "---",
        "apiVersion: kustomize.toolkit.fluxcd.io/v1",
        "kind: Kustomization",
        "metadata:",
        f"  name: {name}",
        f"  namespace: {ns}",
        "spec:",
        f"  interval: {KUSTOMIZATION_INTERVAL}",
        f"  path: {scalar(kustomization_path(path))}",
        "  prune: true",
        "  sourceRef:",
        "    kind: GitRepository",
        f"    name: {name}",
    ]
    return "\n".join(lines) + "\n"
