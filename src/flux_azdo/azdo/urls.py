"""Azure DevOps repository URLs: every spelling users paste, turned into one value.

Users copy clone URLs from the clone dialog (`https://org@dev.azure.com/...`), old bookmarks
(`org.visualstudio.com`), the SSH settings page (scp-like `git@ssh.dev.azure.com:v3/...`) and Azure DevOps Server
(`https://server/tfs/<collection>/...`). Flux needs the `ssh://` form in gotk-sync.yaml, the REST SDK needs the
collection URL, and permission checks need the decoded project and repository names. Parsing every form here, once,
means the rest of the code deals with names, never with URL spelling. A URL that is not Azure DevOps shaped is
still accepted (kind "other"), as `flux bootstrap git` accepts any Git server; the Azure-only features are then off.

Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace
from typing import Literal
from urllib.parse import SplitResult, quote, unquote, urlsplit

from flux_azdo.errors import UserError
from flux_azdo.manifests.azure_devops import AZURE_DEVOPS_HTTPS_HOST, AZURE_DEVOPS_SSH_HOSTS
from flux_azdo.manifests.sync import go_escaped_path
from flux_azdo.redaction import redact_url

HostKind = Literal["services", "legacy", "server", "other"]
Transport = Literal["https", "http", "ssh"]

SERVICES_HOST = AZURE_DEVOPS_HTTPS_HOST  # dev.azure.com
SERVICES_SSH_HOST, LEGACY_SSH_HOST = AZURE_DEVOPS_SSH_HOSTS  # ssh.dev.azure.com, vs-ssh.visualstudio.com
LEGACY_DOMAIN = ".visualstudio.com"
DEFAULT_COLLECTION = "defaultcollection"
TFS_VIRTUAL_DIRECTORY = "tfs"

EXPECTED = "https://dev.azure.com/<org>/<project>/_git/<repo> or git@ssh.dev.azure.com:v3/<org>/<project>/<repo>"
EXPECTED_SSH = (
    "git@ssh.dev.azure.com:v3/<org>/<project>/<repo> (or ssh://git@ssh.dev.azure.com/v3/<org>/<project>/<repo>)"
)
EXPECTED_SERVER = "https://<server>[/tfs]/<collection>/<project>/_git/<repo>"
EXPECTED_ORGANIZATION = (
    "an organization name such as contoso, or https://dev.azure.com/<org> (Server: https://<server>[/tfs]/<collection>)"
)

# `[user@]host:path` without a scheme, as git and Flux read it (no port, no brackets: the same rule as sync.py).
_SCP_LIKE = re.compile(r"^(?:(?P<user>[^@/:]+)@)?(?P<host>[^@/:\[\]]+):(?P<path>.*)$")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?"
_HOST = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
_SSH_USER = re.compile(r"^[^\s/@:]+$")
# Azure DevOps organization names: letters, digits and hyphens, starting and ending with a letter or digit.
_ORGANIZATION = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,48}[A-Za-z0-9])?$")
# What Go's url package leaves unescaped in a path segment, so the sync generator keeps our URLs byte for byte.
_SEGMENT_SAFE = "-_.~$&+,:;=@"


@dataclass(frozen=True)
class RepositoryUrl:
    """One repository URL, parsed: what git, Flux and the REST API each need, and the names for messages."""

    original: str  # as given, password removed (safe to print)
    transport: Transport
    kind: HostKind
    host: str  # lower-case, without IPv6 brackets
    port: int | None
    username: str | None  # ssh user (https user info is dropped for git)
    organization: str | None  # org (services/legacy), collection name (server), None for other
    collection_url: str | None  # REST base for the SDK; None when not derivable (ssh to a server host, other)
    project: str | None  # decoded ("My Project"); project-less form: the repository name
    repository: str | None  # decoded
    project_in_url: bool
    https_url: str | None  # canonical clone URL, encoded (services and legacy: https://dev.azure.com/o/p/_git/r;
    #                        server: its own scheme, so http:// for the sandbox; None for ssh to a server host)
    ssh_url: str | None  # the ssh:// form Flux needs (services/legacy: ssh://git@ssh.dev.azure.com/v3/o/p/r;
    #                      ssh to a server: given URL as ssh://, user (git@ if none) and port kept; https server: None)
    git_url: str  # what git uses this run: http(s) without user info, or the ssh:// form (user kept)

    @property
    def is_azure_devops(self) -> bool:
        return self.kind != "other"

    def with_collection_url(self, url: str, *, allow_insecure_http: bool = False) -> RepositoryUrl:
        """The same repository with the REST base from `--organization` (a name or a URL, validated, normalised).

        Needed for SSH to a server host, where the path names the collection but not its web address. An http
        collection URL is accepted when the repository URL itself is http (the flag was given for it) or with
        `allow_insecure_http`.
        """
        if not self.is_azure_devops:
            raise UserError(
                f"--organization applies only to Azure DevOps repositories, and {self.original!r} is not one: "
                f"drop --organization, or use {EXPECTED}"
            )
        insecure = allow_insecure_http or self.transport == "http"
        return replace(self, collection_url=organization_url(url, allow_insecure_http=insecure))


@dataclass(frozen=True)
class _Location:
    """The URL split into what every form shares; names are decoded path segments."""

    shown: str
    transport: Transport
    scheme: str  # https, http or ssh
    host: str
    port: int | None
    user: str | None
    raw_path: str
    names: tuple[str, ...]

    @property
    def hostport(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    def error(self, problem: str, expected: str = EXPECTED) -> UserError:
        return UserError(f"--url {self.shown!r} {problem}: use {expected}")


def redact(url: str) -> str:
    """The URL safe to print (see `flux_azdo.redaction`): a PAT pasted into it is never echoed."""
    return redact_url(url)


def encode(name: str) -> str:
    """One path segment as Azure DevOps and Go write it (`My Project` -> `My%20Project`)."""
    return quote(name, safe=_SEGMENT_SAFE)


def _reject_control(value: str, flag: str, shown: str, expected: str) -> None:
    if _CONTROL.search(value):
        raise UserError(f"{flag} {shown!r} contains a control character (a newline or tab?): retype it as {expected}")


def _decode(segment: str, location_shown: str, flag: str = "--url") -> str:
    if segment == "":
        raise UserError(f"{flag} {location_shown!r} has an empty path segment ('//'): remove the extra '/'")
    if _BAD_ESCAPE.search(segment):
        raise UserError(
            f"{flag} {location_shown!r} has an invalid percent escape in {segment!r}: write a space as %20, a % as %25"
        )
    try:
        name = unquote(segment, errors="strict")
    except UnicodeDecodeError:
        raise UserError(
            f"{flag} {location_shown!r} has a percent escape that is not UTF-8 in {segment!r}: "
            "copy the URL from the clone dialog"
        ) from None
    if name in (".", ".."):
        raise UserError(
            f"{flag} {location_shown!r} contains a {name!r} path segment: give the repository's clone URL, e.g. "
            + (EXPECTED if flag == "--url" else EXPECTED_ORGANIZATION)
        )
    if "/" in name or "\\" in name or _CONTROL.search(name):
        raise UserError(
            f"{flag} {location_shown!r} has an encoded '/', '\\' or control character in {segment!r}: "
            "names cannot contain them; copy the URL from the clone dialog"
        )
    return name


def _names(path: str, shown: str, flag: str = "--url") -> tuple[str, ...]:
    """Decoded path segments; a leading '/' and one trailing '/' are not segments."""
    segments = path.split("/")
    if segments and segments[0] == "":
        segments = segments[1:]
    if segments and segments[-1] == "":
        segments = segments[:-1]
    return tuple(_decode(segment, shown, flag) for segment in segments)


def _host(hostname: str | None, shown: str, flag: str) -> str:
    host = (hostname or "").lower()
    if not host:
        raise UserError(
            f"{flag} {shown!r} names no host: use " + (EXPECTED if flag == "--url" else EXPECTED_ORGANIZATION)
        )
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise UserError(f"{flag} {shown!r} has an invalid IPv6 address {host!r}: write it as [fd00::1]") from None
    elif not _HOST.match(host):
        raise UserError(f"{flag} {shown!r} has an invalid host name {host!r}: check the URL for typos")
    return host


def _split(raw: str, shown: str, flag: str) -> tuple[SplitResult, int | None]:
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        hint = ""
        if raw.lower().startswith("ssh://"):
            hint = " (ssh:// puts '/' after the host: ssh://git@host/v3/..., scp-like puts ':': git@host:v3/...)"
        raise UserError(f"{flag} {shown!r} has an invalid host or port{hint}: check the URL for typos") from None
    if port == 0:
        raise UserError(f"{flag} {shown!r} has port 0: give a port from 1 to 65535, or none")
    if parts.query or parts.fragment or raw.endswith(("?", "#")):
        raise UserError(
            f"{flag} {shown!r} has a query or fragment ('?' or '#'; a browser address?): "
            "give the clone URL without it, e.g. " + (EXPECTED if flag == "--url" else EXPECTED_ORGANIZATION)
        )
    return parts, port


def _insecure_http(flag: str, shown: str) -> UserError:
    return UserError(
        f"{flag} {shown!r} uses http, which sends credentials in clear text: use https, "
        "or pass --allow-insecure-http for a test server"
    )


def _locate(url: str, allow_insecure_http: bool) -> _Location:
    raw = url.strip()
    shown = redact(raw)
    if not raw:
        raise UserError(f"--url is empty: give the repository's clone URL, e.g. {EXPECTED}")
    _reject_control(url, "--url", shown, EXPECTED)
    scp = None if "://" in raw else _SCP_LIKE.match(raw)
    if scp is not None and scp.group("host").lower() in ("http", "https", "ssh"):
        raise UserError(f"--url {shown!r} is missing '//' after the scheme: use {EXPECTED}")
    if scp is not None and "@" in scp.group("path").partition("/")[0]:
        # `user:password@host/...` without a scheme: not scp-like, and the "path" would carry the password.
        raise UserError(f"--url {shown!r} is not a clone URL: use {EXPECTED}")
    if scp is not None:
        host = _host(scp.group("host"), shown, "--url")
        path = "/" + scp.group("path").lstrip("/")
        user = scp.group("user")
        return _Location(shown, "ssh", "ssh", host, None, user, path, _names(path, shown))
    if "://" not in raw:
        named = _SCHEME.match(raw)
        what = f"scheme {named.group(1).lower()!r} is not supported" if named else "is not a URL"
        raise UserError(f"--url {shown!r}: {what}: use {EXPECTED}")
    scheme = raw.partition("://")[0].lower()
    if scheme not in ("https", "http", "ssh"):
        raise UserError(f"--url {shown!r}: scheme {scheme!r} is not supported: use {EXPECTED}")
    if scheme == "http" and not allow_insecure_http:
        raise _insecure_http("--url", shown)
    parts, port = _split(raw, shown, "--url")
    host = _host(parts.hostname, shown, "--url")
    user = None
    if scheme == "ssh" and parts.username:
        if not _SSH_USER.match(parts.username):
            raise UserError(f"--url {shown!r} has an invalid SSH user name: use git, e.g. {EXPECTED_SSH}")
        user = parts.username
    transport: Transport = "https" if scheme == "https" else "http" if scheme == "http" else "ssh"
    return _Location(shown, transport, scheme, host, port, user, parts.path, _names(parts.path, shown))


def _strip_git_suffix(name: str) -> str:
    return name[:-4] if name.lower().endswith(".git") and len(name) > 4 else name


def _marker(names: tuple[str, ...], marker: str, where: _Location, expected: str) -> int | None:
    """Index of `_git`/`_ssh` (any case); exactly one name (the repository) must follow it."""
    lowered = [name.lower() for name in names]
    if marker not in lowered:
        return None
    index = lowered.index(marker)
    after = len(names) - index - 1
    if after == 0:
        raise where.error(f"names no repository after {marker}", expected)
    if after > 1:
        raise where.error(
            f"has more after the repository name ({'/'.join(names[index + 2 :])!r}; a browser address?)", expected
        )
    return index


def _organization_name(name: str, where: _Location, expected: str) -> str:
    if not _ORGANIZATION.match(name):
        raise where.error(f"has {name!r} where the organization name belongs (letters, digits and '-')", expected)
    return name


def _path(*names: str) -> str:
    return "/" + "/".join(encode(name) for name in names)


def _azure_value(
    where: _Location,
    kind: HostKind,
    organization: str,
    collection_url: str | None,
    project: str | None,
    repository: str,
    *,
    https_url: str | None,
    ssh_url: str | None,
) -> RepositoryUrl:
    """An Azure DevOps shaped URL; git_url keeps the given shape (host, port, prefixes), names re-encoded."""
    names = (*where.names[:-1], _strip_git_suffix(where.names[-1]))
    if where.transport == "ssh":
        git_url = f"ssh://{where.user + '@' if where.user else ''}{where.hostport}{_path(*names)}"
    else:
        git_url = f"{where.scheme}://{where.hostport}{_path(*names)}"
    return RepositoryUrl(
        original=where.shown,
        transport=where.transport,
        kind=kind,
        host=where.host,
        port=where.port,
        username=where.user if where.transport == "ssh" else None,
        organization=organization,
        collection_url=collection_url,
        project=project if project is not None else repository,
        repository=repository,
        project_in_url=project is not None,
        https_url=https_url,
        ssh_url=ssh_url,
        git_url=git_url,
    )


def _cloud(where: _Location, kind: HostKind, organization: str, project: str | None, repository: str) -> RepositoryUrl:
    """dev.azure.com and visualstudio.com: one service, so the canonical URLs are the dev.azure.com ones."""
    full_project = project if project is not None else repository
    if kind == "services":
        collection_url = f"https://{SERVICES_HOST}{_path(organization)}"
    else:
        collection_url = f"https://{organization.lower()}{LEGACY_DOMAIN}"
    return _azure_value(
        where,
        kind,
        organization,
        collection_url,
        project,
        repository,
        https_url=f"https://{SERVICES_HOST}{_path(organization, full_project, '_git', repository)}",
        ssh_url=f"ssh://git@{SERVICES_SSH_HOST}{_path('v3', organization, full_project, repository)}",
    )


def _v3(where: _Location, expected: str | None) -> tuple[str, str, str] | None:
    """(org, project, repo) of an SSH `v3/<org>/<project>/<repo>` path, None when the path is not v3.

    With `expected` (an Azure DevOps SSH host) a v3 path of the wrong length is an error; on other hosts it is
    simply not Azure DevOps shaped.
    """
    if not where.names or where.names[0].lower() != "v3":
        return None
    if len(where.names) != 4:
        if expected is None:
            return None
        raise where.error("needs exactly v3/<org>/<project>/<repo> after the host", expected)
    return where.names[1], where.names[2], _strip_git_suffix(where.names[3])


def _services_https(where: _Location) -> RepositoryUrl:
    expected = "https://dev.azure.com/<org>/<project>/_git/<repo>"
    index = _marker(where.names, "_git", where, expected)
    if index is None or index not in (1, 2):
        raise where.error("is not a repository clone URL", expected)
    organization = _organization_name(where.names[0], where, expected)
    project = where.names[1] if index == 2 else None
    return _cloud(where, "services", organization, project, _strip_git_suffix(where.names[-1]))


def _legacy_https(where: _Location) -> RepositoryUrl:
    expected = "https://<org>.visualstudio.com/<project>/_git/<repo>"
    organization = _organization_name(where.host[: -len(LEGACY_DOMAIN)], where, expected)
    index = _marker(where.names, "_git", where, expected)
    prefix = where.names[:index] if index is not None else ()
    if prefix and prefix[0].lower() == DEFAULT_COLLECTION:
        prefix = prefix[1:]
    if index is None or len(prefix) > 1:
        raise where.error("is not a repository clone URL", expected)
    project = prefix[0] if prefix else None
    return _cloud(where, "legacy", organization, project, _strip_git_suffix(where.names[-1]))


def _services_ssh(where: _Location) -> RepositoryUrl:
    v3 = _v3(where, EXPECTED_SSH)
    if v3 is None:
        raise where.error("is not an Azure DevOps SSH path", EXPECTED_SSH)
    organization, project, repository = v3
    return _cloud(where, "services", _organization_name(organization, where, EXPECTED_SSH), project, repository)


def _legacy_ssh(where: _Location) -> RepositoryUrl:
    expected = "<org>@vs-ssh.visualstudio.com:v3/<org>/<project>/<repo>, or better " + EXPECTED_SSH
    v3 = _v3(where, expected)
    if v3 is not None:
        return _cloud(where, "legacy", _organization_name(v3[0], where, expected), v3[1], v3[2])
    # The older form: ssh://<org>@vs-ssh.visualstudio.com:22/[DefaultCollection/]<project>/_ssh/<repo>.
    older = "ssh://<org>@vs-ssh.visualstudio.com:22/<project>/_ssh/<repo>, or better " + EXPECTED_SSH
    index = _marker(where.names, "_ssh", where, older)
    prefix = where.names[:index] if index is not None else ()
    if prefix and prefix[0].lower() == DEFAULT_COLLECTION:
        prefix = prefix[1:]
    if index is None or len(prefix) > 1:
        raise where.error("is not an Azure DevOps SSH path", expected)
    if not where.user:
        raise where.error("needs the organization as the user name", older)
    organization = _organization_name(where.user, where, older)
    project = prefix[0] if prefix else None
    return _cloud(where, "legacy", organization, project, _strip_git_suffix(where.names[-1]))


def _server_prefix(where: _Location, index: int, expected: str) -> tuple[tuple[str, ...], str, str | None]:
    """(virtual directories, collection, project or None) from the names before `_git` on a server."""
    prefix = where.names[:index]
    if not prefix:
        raise where.error("names no collection before _git", expected)
    if prefix[0].lower() == TFS_VIRTUAL_DIRECTORY and len(prefix) > 1:
        directories, rest = prefix[:1], prefix[1:]
    else:
        directories, rest = prefix[:-2], prefix[-2:]
    if len(rest) == 1:
        return directories, rest[0], None
    if len(rest) == 2:
        return directories, rest[0], rest[1]
    raise where.error("has too many path segments before _git", expected)


def _server(where: _Location) -> RepositoryUrl | None:
    """Azure DevOps Server (and the sandbox): an Azure DevOps shaped path on any other host; None if not shaped."""
    ssh = where.transport == "ssh"
    user = f"{where.user or 'git'}@"  # Flux writes git@ when the URL has no user: say the same
    if ssh:
        expected = "ssh://<server>:22/<collection>/<project>/_git/<repo>"
        v3 = _v3(where, None)
        if v3 is not None:
            ssh_url = f"ssh://{user}{where.hostport}{_path('v3', *v3)}"
            return _azure_value(where, "server", v3[0], None, v3[1], v3[2], https_url=None, ssh_url=ssh_url)
    else:
        expected = EXPECTED_SERVER
    index = _marker(where.names, "_git", where, expected)
    if index is None:
        return None
    directories, collection, project = _server_prefix(where, index, expected)
    repository = _strip_git_suffix(where.names[-1])
    full = (*directories, collection, project if project is not None else repository, "_git", repository)
    if ssh:
        ssh_url = f"ssh://{user}{where.hostport}{_path(*full)}"
        return _azure_value(where, "server", collection, None, project, repository, https_url=None, ssh_url=ssh_url)
    base = f"{where.scheme}://{where.hostport}"
    return _azure_value(
        where,
        "server",
        collection,
        base + _path(*directories, collection),
        project,
        repository,
        https_url=base + _path(*full),
        ssh_url=None,
    )


def _other(where: _Location) -> RepositoryUrl:
    """Plain git: kept as given (user info dropped for http(s), scp-like made ssh://), Azure features off."""
    if where.transport == "ssh":
        git_url = f"ssh://{where.user + '@' if where.user else ''}{where.hostport}{go_escaped_path(where.raw_path)}"
    else:
        git_url = f"{where.scheme}://{where.hostport}{go_escaped_path(where.raw_path)}"
    return RepositoryUrl(
        original=where.shown,
        transport=where.transport,
        kind="other",
        host=where.host,
        port=where.port,
        username=where.user if where.transport == "ssh" else None,
        organization=None,
        collection_url=None,
        project=None,
        repository=None,
        project_in_url=False,
        https_url=None,
        ssh_url=None,
        git_url=git_url,
    )


def parse_repository_url(url: str, *, allow_insecure_http: bool = False) -> RepositoryUrl:
    """Parse any repository URL form; UserError (one line, no secret) for input git could not use either."""
    where = _locate(url, allow_insecure_http)
    if not where.names:
        raise where.error("names no repository")
    host = where.host
    if where.transport == "ssh":
        if host == SERVICES_SSH_HOST:
            return _services_ssh(where)
        if host == LEGACY_SSH_HOST:
            return _legacy_ssh(where)
        if host == SERVICES_HOST or host.endswith(LEGACY_DOMAIN):
            raise where.error(
                f"uses SSH to the web host {host}: Azure DevOps SSH goes to {SERVICES_SSH_HOST}", EXPECTED_SSH
            )
    else:
        if host == SERVICES_HOST:
            return _services_https(where)
        if host in AZURE_DEVOPS_SSH_HOSTS:
            raise where.error(f"uses {where.scheme} with the SSH host {host}", EXPECTED)
        if host.endswith(LEGACY_DOMAIN) and host.count(".") == 2:
            return _legacy_https(where)
    server = _server(where)
    return server if server is not None else _other(where)


def organization_url(value: str, *, allow_insecure_http: bool = False) -> str:
    """`--organization contoso` or a collection URL -> the REST base URL (validated, no trailing '/')."""
    text = value.strip()
    shown = redact(text)
    flag = "--organization"
    if not text:
        raise UserError(f"{flag} is empty: give {EXPECTED_ORGANIZATION}")
    _reject_control(value, flag, shown, EXPECTED_ORGANIZATION)
    if "://" not in text:
        if not _ORGANIZATION.match(text):
            raise UserError(f"{flag} {shown!r} is neither an organization name nor a URL: give {EXPECTED_ORGANIZATION}")
        return f"https://{SERVICES_HOST}/{text}"
    scheme = text.partition("://")[0].lower()
    if scheme not in ("https", "http"):
        raise UserError(f"{flag} {shown!r}: scheme {scheme!r} is not supported: give {EXPECTED_ORGANIZATION}")
    if scheme == "http" and not allow_insecure_http:
        raise _insecure_http(flag, shown)
    parts, port = _split(text, shown, flag)
    if "@" in parts.netloc:
        raise UserError(f"{flag} {shown!r} must not carry a user name or password: give {EXPECTED_ORGANIZATION}")
    host = _host(parts.hostname, shown, flag)
    names = _names(parts.path.rstrip("/"), shown, flag)
    if host in AZURE_DEVOPS_SSH_HOSTS:
        raise UserError(f"{flag} {shown!r} is an SSH host, not the web address: give {EXPECTED_ORGANIZATION}")
    if any(name.lower() in ("_git", "_ssh") for name in names):
        raise UserError(f"{flag} {shown!r} is a repository URL: give the collection URL, {EXPECTED_ORGANIZATION}")
    if host == SERVICES_HOST and (len(names) != 1 or not _ORGANIZATION.match(names[0])):
        raise UserError(f"{flag} {shown!r} must be https://dev.azure.com/<org> and nothing after the organization")
    if host.endswith(LEGACY_DOMAIN) and (len(names) > 1 or (names and names[0].lower() != DEFAULT_COLLECTION)):
        raise UserError(f"{flag} {shown!r} must be https://<org>.visualstudio.com and nothing after it")
    bracketed = f"[{host}]" if ":" in host else host
    hostport = bracketed if port is None else f"{bracketed}:{port}"
    return f"{scheme}://{hostport}{_path(*names) if names else ''}"
