"""Repository URLs: every form users paste parses to the same names, canonical URLs, and safe errors."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from typing import Any

import pytest

from flux_azdo.azdo.urls import RepositoryUrl, encode, organization_url, parse_repository_url
from flux_azdo.errors import UserError
from flux_azdo.manifests.sync import SyncOptions, resolve_sync_target
from flux_azdo.sandbox.runtime import Sandbox

HTTPS = "https://dev.azure.com/contoso/platform/_git/fleet-infra"
SSH = "ssh://git@ssh.dev.azure.com/v3/contoso/platform/fleet-infra"
COLLECTION = "https://dev.azure.com/contoso"
LEGACY_COLLECTION = "https://contoso.visualstudio.com"


def services(original: str, transport: str = "https", **changes: object) -> RepositoryUrl:
    """contoso/platform/fleet-infra on dev.azure.com over https; `changes` are the fields a form differs in."""
    fields: dict[str, object] = {
        "original": original,
        "transport": transport,
        "kind": "services",
        "host": "dev.azure.com",
        "port": None,
        "username": None,
        "organization": "contoso",
        "collection_url": COLLECTION,
        "project": "platform",
        "repository": "fleet-infra",
        "project_in_url": True,
        "https_url": HTTPS,
        "ssh_url": SSH,
        "git_url": HTTPS,
    }
    fields.update(changes)
    return RepositoryUrl(**fields)  # type: ignore[arg-type]


# Every field of every form: (input, the value parse_repository_url must return).
FORMS = [
    pytest.param(HTTPS, services(HTTPS), id="services"),
    pytest.param(
        "https://contoso@dev.azure.com/contoso/platform/_git/fleet-infra",
        services("https://contoso@dev.azure.com/contoso/platform/_git/fleet-infra"),
        id="services-clone-dialog-user",
    ),
    pytest.param(
        "https://contoso:s3cret-pat@dev.azure.com/contoso/platform/_git/fleet-infra",
        services("https://contoso:***@dev.azure.com/contoso/platform/_git/fleet-infra"),
        id="services-user-and-password",
    ),
    pytest.param(
        "https://dev.azure.com/contoso/_git/fleet-infra",
        services(
            "https://dev.azure.com/contoso/_git/fleet-infra",
            project="fleet-infra",
            project_in_url=False,
            https_url="https://dev.azure.com/contoso/fleet-infra/_git/fleet-infra",
            ssh_url="ssh://git@ssh.dev.azure.com/v3/contoso/fleet-infra/fleet-infra",
            git_url="https://dev.azure.com/contoso/_git/fleet-infra",
        ),
        id="services-project-less",
    ),
    pytest.param(f"{HTTPS}.git", services(f"{HTTPS}.git"), id="services-dot-git"),
    pytest.param(f"{HTTPS}/", services(f"{HTTPS}/"), id="services-trailing-slash"),
    pytest.param(f"  {HTTPS}.git/ ", services(f"{HTTPS}.git/"), id="services-dot-git-slash-blanks"),
    pytest.param(
        "HTTPS://DEV.AZURE.COM/Contoso/Platform/_GIT/Fleet-Infra",
        services(
            "HTTPS://DEV.AZURE.COM/Contoso/Platform/_GIT/Fleet-Infra",
            organization="Contoso",
            collection_url="https://dev.azure.com/Contoso",
            project="Platform",
            repository="Fleet-Infra",
            https_url="https://dev.azure.com/Contoso/Platform/_git/Fleet-Infra",
            ssh_url="ssh://git@ssh.dev.azure.com/v3/Contoso/Platform/Fleet-Infra",
            git_url="https://dev.azure.com/Contoso/Platform/_GIT/Fleet-Infra",
        ),
        id="services-case",
    ),
    pytest.param(
        "https://dev.azure.com/contoso/My%20Project/_git/fl%C3%B6te%20infra",
        services(
            "https://dev.azure.com/contoso/My%20Project/_git/fl%C3%B6te%20infra",
            project="My Project",
            repository="flöte infra",
            https_url="https://dev.azure.com/contoso/My%20Project/_git/fl%C3%B6te%20infra",
            ssh_url="ssh://git@ssh.dev.azure.com/v3/contoso/My%20Project/fl%C3%B6te%20infra",
            git_url="https://dev.azure.com/contoso/My%20Project/_git/fl%C3%B6te%20infra",
        ),
        id="services-percent-encoded",
    ),
    pytest.param(
        "https://dev.azure.com/contoso/My Project/_git/flöte infra",
        services(
            "https://dev.azure.com/contoso/My Project/_git/flöte infra",
            project="My Project",
            repository="flöte infra",
            https_url="https://dev.azure.com/contoso/My%20Project/_git/fl%C3%B6te%20infra",
            ssh_url="ssh://git@ssh.dev.azure.com/v3/contoso/My%20Project/fl%C3%B6te%20infra",
            git_url="https://dev.azure.com/contoso/My%20Project/_git/fl%C3%B6te%20infra",
        ),
        id="services-raw-space-and-unicode",
    ),
    pytest.param(
        "https://dev.azure.com:443/contoso/platform/_git/fleet-infra",
        services(
            "https://dev.azure.com:443/contoso/platform/_git/fleet-infra",
            port=443,
            git_url="https://dev.azure.com:443/contoso/platform/_git/fleet-infra",
        ),
        id="services-port",
    ),
    pytest.param(
        "http://dev.azure.com/contoso/platform/_git/fleet-infra",
        services(
            "http://dev.azure.com/contoso/platform/_git/fleet-infra",
            transport="http",
            git_url="http://dev.azure.com/contoso/platform/_git/fleet-infra",
        ),
        id="services-http-with-flag",
    ),
    pytest.param(
        "https://contoso.visualstudio.com/platform/_git/fleet-infra",
        services(
            "https://contoso.visualstudio.com/platform/_git/fleet-infra",
            kind="legacy",
            host="contoso.visualstudio.com",
            collection_url=LEGACY_COLLECTION,
            git_url="https://contoso.visualstudio.com/platform/_git/fleet-infra",
        ),
        id="legacy",
    ),
    pytest.param(
        "https://Contoso.VisualStudio.com/DefaultCollection/platform/_git/fleet-infra",
        services(
            "https://Contoso.VisualStudio.com/DefaultCollection/platform/_git/fleet-infra",
            kind="legacy",
            host="contoso.visualstudio.com",
            collection_url=LEGACY_COLLECTION,
            git_url="https://contoso.visualstudio.com/DefaultCollection/platform/_git/fleet-infra",
        ),
        id="legacy-default-collection",
    ),
    pytest.param(
        "https://contoso.visualstudio.com/_git/fleet-infra",
        services(
            "https://contoso.visualstudio.com/_git/fleet-infra",
            kind="legacy",
            host="contoso.visualstudio.com",
            collection_url=LEGACY_COLLECTION,
            project="fleet-infra",
            project_in_url=False,
            https_url="https://dev.azure.com/contoso/fleet-infra/_git/fleet-infra",
            ssh_url="ssh://git@ssh.dev.azure.com/v3/contoso/fleet-infra/fleet-infra",
            git_url="https://contoso.visualstudio.com/_git/fleet-infra",
        ),
        id="legacy-project-less",
    ),
    pytest.param(
        "https://contoso.visualstudio.com/DefaultCollection/_git/fleet-infra.git/",
        services(
            "https://contoso.visualstudio.com/DefaultCollection/_git/fleet-infra.git/",
            kind="legacy",
            host="contoso.visualstudio.com",
            collection_url=LEGACY_COLLECTION,
            project="fleet-infra",
            project_in_url=False,
            https_url="https://dev.azure.com/contoso/fleet-infra/_git/fleet-infra",
            ssh_url="ssh://git@ssh.dev.azure.com/v3/contoso/fleet-infra/fleet-infra",
            git_url="https://contoso.visualstudio.com/DefaultCollection/_git/fleet-infra",
        ),
        id="legacy-default-collection-project-less",
    ),
    pytest.param(
        "https://tfs.example.com/tfs/DefaultCollection/platform/_git/fleet-infra",
        services(
            "https://tfs.example.com/tfs/DefaultCollection/platform/_git/fleet-infra",
            kind="server",
            host="tfs.example.com",
            organization="DefaultCollection",
            collection_url="https://tfs.example.com/tfs/DefaultCollection",
            https_url="https://tfs.example.com/tfs/DefaultCollection/platform/_git/fleet-infra",
            ssh_url=None,
            git_url="https://tfs.example.com/tfs/DefaultCollection/platform/_git/fleet-infra",
        ),
        id="server-tfs",
    ),
    pytest.param(
        "https://build@ADO.example.com:8443/Fabrikam/My%20Project/_git/fleet-infra.git",
        services(
            "https://***@ADO.example.com:8443/Fabrikam/My%20Project/_git/fleet-infra.git",
            kind="server",
            host="ado.example.com",
            port=8443,
            organization="Fabrikam",
            collection_url="https://ado.example.com:8443/Fabrikam",
            project="My Project",
            https_url="https://ado.example.com:8443/Fabrikam/My%20Project/_git/fleet-infra",
            ssh_url=None,
            git_url="https://ado.example.com:8443/Fabrikam/My%20Project/_git/fleet-infra",
        ),
        id="server-port-no-tfs",
    ),
    pytest.param(
        "https://ado.example.com/Fabrikam/_git/fleet-infra",
        services(
            "https://ado.example.com/Fabrikam/_git/fleet-infra",
            kind="server",
            host="ado.example.com",
            organization="Fabrikam",
            collection_url="https://ado.example.com/Fabrikam",
            project="fleet-infra",
            project_in_url=False,
            https_url="https://ado.example.com/Fabrikam/fleet-infra/_git/fleet-infra",
            ssh_url=None,
            git_url="https://ado.example.com/Fabrikam/_git/fleet-infra",
        ),
        id="server-project-less",
    ),
    pytest.param(
        "http://127.0.0.1:8080/sandbox-org/platform/_git/fleet-infra",
        services(
            "http://127.0.0.1:8080/sandbox-org/platform/_git/fleet-infra",
            transport="http",
            kind="server",
            host="127.0.0.1",
            port=8080,
            organization="sandbox-org",
            collection_url="http://127.0.0.1:8080/sandbox-org",
            https_url="http://127.0.0.1:8080/sandbox-org/platform/_git/fleet-infra",
            ssh_url=None,
            git_url="http://127.0.0.1:8080/sandbox-org/platform/_git/fleet-infra",
        ),
        id="server-sandbox-http",
    ),
    pytest.param(
        "https://[FD00::1]:8443/coll/platform/_git/fleet-infra",
        services(
            "https://[FD00::1]:8443/coll/platform/_git/fleet-infra",
            kind="server",
            host="fd00::1",
            port=8443,
            organization="coll",
            collection_url="https://[fd00::1]:8443/coll",
            https_url="https://[fd00::1]:8443/coll/platform/_git/fleet-infra",
            ssh_url=None,
            git_url="https://[fd00::1]:8443/coll/platform/_git/fleet-infra",
        ),
        id="server-ipv6",
    ),
    pytest.param(
        "https://ado.example.com/azdo/Fabrikam/platform/_git/fleet-infra",
        services(
            "https://ado.example.com/azdo/Fabrikam/platform/_git/fleet-infra",
            kind="server",
            host="ado.example.com",
            organization="Fabrikam",
            collection_url="https://ado.example.com/azdo/Fabrikam",
            https_url="https://ado.example.com/azdo/Fabrikam/platform/_git/fleet-infra",
            ssh_url=None,
            git_url="https://ado.example.com/azdo/Fabrikam/platform/_git/fleet-infra",
        ),
        id="server-other-virtual-directory",
    ),
    pytest.param(
        "git@ssh.dev.azure.com:v3/contoso/platform/fleet-infra",
        services(
            "git@ssh.dev.azure.com:v3/contoso/platform/fleet-infra",
            transport="ssh",
            host="ssh.dev.azure.com",
            username="git",
            git_url=SSH,
        ),
        id="ssh-scp-like",
    ),
    pytest.param(
        SSH, services(SSH, transport="ssh", host="ssh.dev.azure.com", username="git", git_url=SSH), id="ssh-url"
    ),
    pytest.param(
        "ssh://git:s3cret@SSH.dev.azure.com:22/v3/contoso/platform/fleet-infra.git/",
        services(
            "ssh://git:***@SSH.dev.azure.com:22/v3/contoso/platform/fleet-infra.git/",
            transport="ssh",
            host="ssh.dev.azure.com",
            port=22,
            username="git",
            git_url="ssh://git@ssh.dev.azure.com:22/v3/contoso/platform/fleet-infra",
        ),
        id="ssh-url-port-password-dot-git",
    ),
    pytest.param(
        "git@ssh.dev.azure.com:v3/contoso/My%20Project/fleet-infra",
        services(
            "git@ssh.dev.azure.com:v3/contoso/My%20Project/fleet-infra",
            transport="ssh",
            host="ssh.dev.azure.com",
            username="git",
            project="My Project",
            https_url="https://dev.azure.com/contoso/My%20Project/_git/fleet-infra",
            ssh_url="ssh://git@ssh.dev.azure.com/v3/contoso/My%20Project/fleet-infra",
            git_url="ssh://git@ssh.dev.azure.com/v3/contoso/My%20Project/fleet-infra",
        ),
        id="ssh-percent-encoded",
    ),
    pytest.param(
        "contoso@vs-ssh.visualstudio.com:v3/contoso/platform/fleet-infra",
        services(
            "contoso@vs-ssh.visualstudio.com:v3/contoso/platform/fleet-infra",
            transport="ssh",
            kind="legacy",
            host="vs-ssh.visualstudio.com",
            username="contoso",
            collection_url=LEGACY_COLLECTION,
            git_url="ssh://contoso@vs-ssh.visualstudio.com/v3/contoso/platform/fleet-infra",
        ),
        id="legacy-ssh-scp-like",
    ),
    pytest.param(
        "ssh://contoso@vs-ssh.visualstudio.com:22/v3/contoso/platform/fleet-infra",
        services(
            "ssh://contoso@vs-ssh.visualstudio.com:22/v3/contoso/platform/fleet-infra",
            transport="ssh",
            kind="legacy",
            host="vs-ssh.visualstudio.com",
            port=22,
            username="contoso",
            collection_url=LEGACY_COLLECTION,
            git_url="ssh://contoso@vs-ssh.visualstudio.com:22/v3/contoso/platform/fleet-infra",
        ),
        id="legacy-ssh-url",
    ),
    pytest.param(
        "ssh://contoso@vs-ssh.visualstudio.com:22/platform/_ssh/fleet-infra",
        services(
            "ssh://contoso@vs-ssh.visualstudio.com:22/platform/_ssh/fleet-infra",
            transport="ssh",
            kind="legacy",
            host="vs-ssh.visualstudio.com",
            port=22,
            username="contoso",
            collection_url=LEGACY_COLLECTION,
            git_url="ssh://contoso@vs-ssh.visualstudio.com:22/platform/_ssh/fleet-infra",
        ),
        id="legacy-ssh-older",
    ),
    pytest.param(
        "ssh://Contoso@vs-ssh.visualstudio.com:22/DefaultCollection/platform/_ssh/fleet-infra",
        services(
            "ssh://Contoso@vs-ssh.visualstudio.com:22/DefaultCollection/platform/_ssh/fleet-infra",
            transport="ssh",
            kind="legacy",
            host="vs-ssh.visualstudio.com",
            port=22,
            username="Contoso",
            organization="Contoso",
            collection_url=LEGACY_COLLECTION,
            https_url="https://dev.azure.com/Contoso/platform/_git/fleet-infra",
            ssh_url="ssh://git@ssh.dev.azure.com/v3/Contoso/platform/fleet-infra",
            git_url="ssh://Contoso@vs-ssh.visualstudio.com:22/DefaultCollection/platform/_ssh/fleet-infra",
        ),
        id="legacy-ssh-older-default-collection",
    ),
    pytest.param(
        "ssh://contoso@vs-ssh.visualstudio.com:22/_ssh/fleet-infra",
        services(
            "ssh://contoso@vs-ssh.visualstudio.com:22/_ssh/fleet-infra",
            transport="ssh",
            kind="legacy",
            host="vs-ssh.visualstudio.com",
            port=22,
            username="contoso",
            collection_url=LEGACY_COLLECTION,
            project="fleet-infra",
            project_in_url=False,
            https_url="https://dev.azure.com/contoso/fleet-infra/_git/fleet-infra",
            ssh_url="ssh://git@ssh.dev.azure.com/v3/contoso/fleet-infra/fleet-infra",
            git_url="ssh://contoso@vs-ssh.visualstudio.com:22/_ssh/fleet-infra",
        ),
        id="legacy-ssh-older-project-less",
    ),
    pytest.param(
        "ssh://ado.example.com:22/DefaultCollection/platform/_git/fleet-infra",
        services(
            "ssh://ado.example.com:22/DefaultCollection/platform/_git/fleet-infra",
            transport="ssh",
            kind="server",
            host="ado.example.com",
            port=22,
            organization="DefaultCollection",
            collection_url=None,
            https_url=None,
            ssh_url="ssh://git@ado.example.com:22/DefaultCollection/platform/_git/fleet-infra",
            git_url="ssh://ado.example.com:22/DefaultCollection/platform/_git/fleet-infra",
        ),
        id="server-ssh-git-path-no-user",
    ),
    pytest.param(
        "ssh://root@127.0.0.1:2222/v3/sandbox-org/platform/fleet-infra",
        services(
            "ssh://root@127.0.0.1:2222/v3/sandbox-org/platform/fleet-infra",
            transport="ssh",
            kind="server",
            host="127.0.0.1",
            port=2222,
            username="root",
            organization="sandbox-org",
            collection_url=None,
            https_url=None,
            ssh_url="ssh://root@127.0.0.1:2222/v3/sandbox-org/platform/fleet-infra",
            git_url="ssh://root@127.0.0.1:2222/v3/sandbox-org/platform/fleet-infra",
        ),
        id="server-ssh-v3-sandbox",
    ),
    pytest.param(
        "git@ado.example.com:v3/Fabrikam/My%20Project/fleet-infra.git",
        services(
            "git@ado.example.com:v3/Fabrikam/My%20Project/fleet-infra.git",
            transport="ssh",
            kind="server",
            host="ado.example.com",
            username="git",
            organization="Fabrikam",
            collection_url=None,
            project="My Project",
            https_url=None,
            ssh_url="ssh://git@ado.example.com/v3/Fabrikam/My%20Project/fleet-infra",
            git_url="ssh://git@ado.example.com/v3/Fabrikam/My%20Project/fleet-infra",
        ),
        id="server-ssh-v3-scp-like",
    ),
]


def other(
    original: str, transport: str, host: str, git_url: str, *, port: int | None = None, user: str | None = None
) -> RepositoryUrl:
    return RepositoryUrl(
        original=original,
        transport=transport,  # type: ignore[arg-type]
        kind="other",
        host=host,
        port=port,
        username=user,
        organization=None,
        collection_url=None,
        project=None,
        repository=None,
        project_in_url=False,
        https_url=None,
        ssh_url=None,
        git_url=git_url,
    )


OTHERS = [
    pytest.param(
        "https://github.com/o/r.git",
        other("https://github.com/o/r.git", "https", "github.com", "https://github.com/o/r.git"),
        id="https-github",
    ),
    pytest.param(
        "https://ci:s3cret@GitLab.example.com:8443/group/sub group/repo.git/",
        other(
            "https://ci:***@GitLab.example.com:8443/group/sub group/repo.git/",
            "https",
            "gitlab.example.com",
            "https://gitlab.example.com:8443/group/sub%20group/repo.git/",
            port=8443,
        ),
        id="https-user-password-dropped",
    ),
    pytest.param(
        "ssh://git@example.com/repo.git",
        other("ssh://git@example.com/repo.git", "ssh", "example.com", "ssh://git@example.com/repo.git", user="git"),
        id="ssh-url",
    ),
    pytest.param(
        "git@example.com:repo.git",
        other("git@example.com:repo.git", "ssh", "example.com", "ssh://git@example.com/repo.git", user="git"),
        id="scp-like",
    ),
    pytest.param(
        "example.com:/srv/git/repo.git",
        other("example.com:/srv/git/repo.git", "ssh", "example.com", "ssh://example.com/srv/git/repo.git"),
        id="scp-like-no-user-absolute",
    ),
    pytest.param(
        "ssh://git@example.com:2222/v3/too-short",
        other(
            "ssh://git@example.com:2222/v3/too-short",
            "ssh",
            "example.com",
            "ssh://git@example.com:2222/v3/too-short",
            port=2222,
            user="git",
        ),
        id="v3-prefix-not-azure-shaped",
    ),
]


@pytest.mark.parametrize(("url", "expected"), FORMS + OTHERS)
def test_every_form_parses_to_every_field(url: str, expected: RepositoryUrl) -> None:
    parsed = parse_repository_url(url, allow_insecure_http=True)
    assert dataclasses.asdict(parsed) == dataclasses.asdict(expected)
    assert parsed.is_azure_devops is (expected.kind != "other")


def azure_inputs(select: Callable[[RepositoryUrl], bool] = lambda _: True) -> list[Any]:
    """The inputs of FORMS whose expected value matches `select`; each test parses them itself."""
    return [pytest.param(p.values[0], id=p.id) for p in FORMS if select(p.values[1])]


def parse(url: str) -> RepositoryUrl:
    return parse_repository_url(url, allow_insecure_http=True)


@pytest.mark.parametrize("url", azure_inputs())
def test_canonical_urls_round_trip(url: str) -> None:
    parsed = parse(url)
    names = (parsed.organization, parsed.project, parsed.repository)
    derived = [u for u in (parsed.https_url, parsed.ssh_url) if u is not None]
    assert derived, "every Azure DevOps form derives at least one canonical URL"
    for canonical in derived:
        again = parse(canonical)
        assert (again.organization, again.project, again.repository) == names
        assert again.project_in_url  # canonical URLs always name the project
        assert (again.https_url, again.ssh_url) == (parsed.https_url, parsed.ssh_url)
        assert again.git_url == canonical  # canonical in, canonical out: nothing left to normalise
    again = parse(parsed.git_url)
    assert (again.kind, again.organization, again.project, again.repository) == (parsed.kind, *names)
    assert (again.collection_url, again.https_url, again.ssh_url, again.git_url) == (
        parsed.collection_url,
        parsed.https_url,
        parsed.ssh_url,
        parsed.git_url,
    )


@pytest.mark.parametrize("url", azure_inputs(lambda x: x.transport == "ssh" or x.kind != "server"))
def test_ssh_url_is_what_the_sync_generator_writes(url: str) -> None:
    parsed = parse(url)
    assert parsed.ssh_url is not None and parsed.ssh_url.startswith("ssh://")
    assert resolve_sync_target(SyncOptions(url=parsed.ssh_url)).url == parsed.ssh_url


@pytest.mark.parametrize("url", azure_inputs(lambda x: x.transport == "ssh"))
def test_ssh_git_url_is_a_url_the_sync_generator_keeps(url: str) -> None:
    parsed = parse(url)
    target = resolve_sync_target(SyncOptions(url=parsed.git_url))
    expected = parsed.git_url if parsed.username else parsed.git_url.replace("ssh://", "ssh://git@", 1)
    assert target.url == expected


@pytest.mark.parametrize("url", azure_inputs(lambda x: x.transport == "https"))
def test_https_url_is_what_the_sync_generator_writes_for_token_auth(url: str) -> None:
    parsed = parse(url)
    assert parsed.https_url is not None
    assert resolve_sync_target(SyncOptions(url=parsed.https_url)).url == parsed.https_url


@pytest.mark.parametrize(
    "url",
    [
        "git@ssh.dev.azure.com:v3/contoso/platform/fleet-infra",
        "git@ssh.dev.azure.com:v3/contoso/My%20Project/fleet-infra",
        "git@example.com:repo.git",
        "deploy@example.com:group/repo.git",
        "example.com:/srv/git/repo.git",
    ],
)
def test_scp_like_input_becomes_the_same_ssh_url_as_the_sync_target(url: str) -> None:
    parsed = parse_repository_url(url)
    target = resolve_sync_target(SyncOptions(url=url))
    assert target.url.startswith("ssh://")
    assert target.url == (parsed.ssh_url or parsed.git_url).replace("ssh://example.com", "ssh://git@example.com")


# Names with every character class a project or repository may carry; none end in .git or start with '_'.
_ALPHABET = "abcXYZ019-._~ &+,;=@!'()$äßéø中文"


def _random_names(seed: int, count: int) -> list[tuple[str, str, str]]:
    rng = random.Random(seed)
    org_chars = "abcdefghijklmnopqrstuvwxyz0123456789-"
    result = []
    while len(result) < count:
        org = rng.choice("abcxyz0") + "".join(rng.choice(org_chars) for _ in range(rng.randint(0, 8))) + "z"
        project, repo = ("".join(rng.choice(_ALPHABET) for _ in range(rng.randint(1, 12))) for _ in range(2))
        names = (project, repo)
        if any(n in (".", "..") or n.lower().endswith(".git") or n.startswith("_") for n in names):
            continue
        if any(n.lower() in ("v3", "tfs", "defaultcollection") for n in names):
            continue
        result.append((org, project, repo))
    return result


@pytest.mark.parametrize(("org", "project", "repo"), _random_names(20240604, 60))
def test_property_any_names_survive_every_form(org: str, project: str, repo: str) -> None:
    o, p, r = encode(org), encode(project), encode(repo)
    forms = {
        f"https://dev.azure.com/{o}/{p}/_git/{r}": "services",
        f"https://{o}@dev.azure.com/{o}/{p}/_git/{r}.git": "services",
        f"https://{o}.visualstudio.com/DefaultCollection/{p}/_git/{r}/": "legacy",
        f"git@ssh.dev.azure.com:v3/{o}/{p}/{r}": "services",
        f"ssh://{o}@vs-ssh.visualstudio.com:22/v3/{o}/{p}/{r}": "legacy",
        f"ssh://{o}@vs-ssh.visualstudio.com:22/{p}/_ssh/{r}": "legacy",
        f"https://ado.example.com/tfs/{o}/{p}/_git/{r}": "server",
        f"ssh://root@127.0.0.1:2222/v3/{o}/{p}/{r}": "server",
    }
    for url, kind in forms.items():
        parsed = parse_repository_url(url)
        assert (parsed.kind, parsed.organization, parsed.project, parsed.repository) == (kind, org, project, repo), url
        for canonical in (parsed.https_url, parsed.ssh_url):
            if canonical is None:
                continue
            again = parse_repository_url(canonical)
            assert (again.organization, again.project, again.repository) == (org, project, repo), canonical
            assert (again.https_url, again.ssh_url) == (parsed.https_url, parsed.ssh_url)
        if parsed.ssh_url is not None:
            assert resolve_sync_target(SyncOptions(url=parsed.ssh_url)).url == parsed.ssh_url


EXPECTED_FORM = "https://dev.azure.com/<org>/<project>/_git/<repo>"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "--url is empty: give the repository's clone URL"),
        ("   ", "--url is empty"),
        ("ftp://dev.azure.com/contoso/platform/_git/fleet-infra", "scheme 'ftp' is not supported"),
        ("file:///srv/git/repo.git", "scheme 'file' is not supported"),
        ("mailto:someone@example.com", "is not a clone URL"),
        ("dev.azure.com/contoso/platform/_git/fleet-infra", "is not a URL"),
        ("/srv/git/repo.git", "is not a URL"),
        ("https:/dev.azure.com/contoso/platform/_git/fleet-infra", "is missing '//' after the scheme"),
        ("https://dev.azure.com", "names no repository"),
        ("https://dev.azure.com/contoso/platform", "is not a repository clone URL"),
        ("https://dev.azure.com/contoso/platform/_git", "names no repository after _git"),
        ("https://dev.azure.com/contoso/platform/_git/", "names no repository after _git"),
        ("https://dev.azure.com/_git/fleet-infra", "is not a repository clone URL"),
        ("https://dev.azure.com/contoso/platform/_git/fleet-infra/branches", "has more after the repository name"),
        ("https://contoso.visualstudio.com/platform", "is not a repository clone URL"),
        ("https://contoso.visualstudio.com/a/b/_git/fleet-infra", "is not a repository clone URL"),
        ("https://ado.example.com/_git/fleet-infra", "names no collection before _git"),
        ("https://dev.azure.com/contoso/platform/_git/fleet-infra?path=/", "has a query or fragment"),
        ("https://dev.azure.com/contoso/platform/_git/fleet-infra#readme", "has a query or fragment"),
        ("https://dev.azure.com/contoso/platform/_git/fleet-infra?", "has a query or fragment"),
        ("https://dev.azure.com/contoso/../_git/fleet-infra", "contains a '..' path segment"),
        ("https://dev.azure.com/contoso/%2e%2E/_git/fleet-infra", "contains a '..' path segment"),
        ("https://dev.azure.com/contoso/./_git/fleet-infra", "contains a '.' path segment"),
        ("ssh://git@example.com/../../etc/passwd", "contains a '..' path segment"),
        ("https://dev.azure.com/contoso/platform/_git/fleet-infra\n", "contains a control character"),
        ("https://dev.azure.com/contoso/plat\tform/_git/fleet-infra", "contains a control character"),
        ("https://dev.azure.com/contoso/platform/_git/fleet%0Ainfra", "control character"),
        ("https://dev.azure.com/contoso/platform/_git/fleet%zzinfra", "invalid percent escape"),
        ("https://dev.azure.com/contoso/platform/_git/fleet%FFinfra", "not UTF-8"),
        ("https://dev.azure.com/contoso/a%2Fb/_git/fleet-infra", "has an encoded '/'"),
        ("https://dev.azure.com/contoso//_git/fleet-infra", "has an empty path segment"),
        ("https://dev.azure.com/-contoso-/platform/_git/fleet-infra", "where the organization name belongs"),
        ("https://dev azure.com/contoso/platform/_git/fleet-infra", "invalid host name"),
        ("https:///contoso/platform/_git/fleet-infra", "names no host"),
        ("https://dev.azure.com:99999/contoso/platform/_git/fleet-infra", "invalid host or port"),
        ("https://dev.azure.com:0/contoso/platform/_git/fleet-infra", "has port 0"),
        ("https://[fd00::zz]/c/p/_git/r", "invalid host or port"),
        ("ssh://git@ssh.dev.azure.com/contoso/platform/fleet-infra", "is not an Azure DevOps SSH path"),
        ("git@ssh.dev.azure.com:v3/contoso/platform", "needs exactly v3/<org>/<project>/<repo>"),
        ("git@ssh.dev.azure.com:v3/contoso/platform/fleet-infra/x", "needs exactly v3/<org>/<project>/<repo>"),
        ("ssh://git@ssh.dev.azure.com:v3/contoso/platform/fleet-infra", "ssh:// puts '/' after the host"),
        ("ssh://vs-ssh.visualstudio.com:22/platform/_ssh/fleet-infra", "needs the organization as the user name"),
        ("ssh://contoso@vs-ssh.visualstudio.com:22/platform/fleet-infra", "is not an Azure DevOps SSH path"),
        ("git@dev.azure.com:v3/contoso/platform/fleet-infra", "uses SSH to the web host dev.azure.com"),
        ("git@contoso.visualstudio.com:v3/contoso/platform/fleet-infra", "uses SSH to the web host"),
        ("https://ssh.dev.azure.com/v3/contoso/platform/fleet-infra", "uses https with the SSH host"),
        ("ssh://git user@example.com/repo.git", "invalid SSH user name"),
    ],
)
def test_bad_input_is_a_one_line_error_with_the_expected_form(url: str, message: str) -> None:
    with pytest.raises(UserError) as caught:
        parse_repository_url(url)
    text = caught.value.message
    assert message in text
    assert "\n" not in str(caught.value)
    # Says what is wrong and shows the form to use (or, for an encoding slip, how to write it).
    assert text.startswith("--url")
    assert any(
        hint in text for hint in ("<repo>", "%20", "clone dialog", "port from 1", "check the URL", "remove the extra")
    ), text


@pytest.mark.parametrize(
    "url",
    [
        "http://dev.azure.com/contoso/platform/_git/fleet-infra",
        "http://127.0.0.1:8080/sandbox-org/platform/_git/fleet-infra",
        "HTTP://github.com/o/r.git",
    ],
)
def test_http_needs_allow_insecure_http(url: str) -> None:
    with pytest.raises(
        UserError, match="uses http, which sends credentials in clear text: use https, or pass --allow-insecure-http"
    ):
        parse_repository_url(url)
    assert parse_repository_url(url, allow_insecure_http=True).transport == "http"


@pytest.mark.parametrize(
    "url",
    [
        "https://contoso:s3cret@dev.azure.com/contoso/platform/_git/fleet-infra",
        "https://contoso:p@ss:s3cret@dev.azure.com/contoso/platform/_git/fleet-infra",
        "https://:s3cret@dev.azure.com/contoso/platform/_git/fleet-infra",
        "ssh://git:s3cret@ssh.dev.azure.com/v3/contoso/platform/fleet-infra",
        "https://ci:s3cret@gitlab.example.com/group/repo.git",
        "https://contoso:s3cret@ado.example.com/tfs/coll/platform/_git/fleet-infra",
    ],
)
def test_a_password_never_reaches_any_field(url: str) -> None:
    parsed = parse_repository_url(url)
    assert "s3cret" not in repr(parsed)
    assert ":***@" in parsed.original


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        # A PAT as the whole user name authenticates with git just as well: it is hidden too.
        (
            "https://s3cretpat0123456789@dev.azure.com/contoso/platform/_git/fleet-infra",
            "https://***@dev.azure.com/contoso/platform/_git/fleet-infra",
        ),
        # The clone dialog's form repeats the organisation: nothing secret, kept.
        (
            "https://contoso@dev.azure.com/contoso/platform/_git/fleet-infra",
            "https://contoso@dev.azure.com/contoso/platform/_git/fleet-infra",
        ),
        (
            "https://contoso@contoso.visualstudio.com/platform/_git/fleet-infra",
            "https://contoso@contoso.visualstudio.com/platform/_git/fleet-infra",
        ),
    ],
)
def test_a_user_name_that_may_be_a_token_is_hidden(url: str, shown: str) -> None:
    parsed = parse_repository_url(url)
    assert parsed.original == shown
    assert "s3cretpat" not in repr(parsed)


def test_a_token_as_user_name_is_not_echoed_in_errors() -> None:
    with pytest.raises(UserError) as raised:
        parse_repository_url("https://s3cretpat0123456789@dev.azure.com/contoso/platform")
    assert "s3cretpat" not in raised.value.message and "***@dev.azure.com" in raised.value.message


@pytest.mark.parametrize(
    "url",
    [
        "ftp://contoso:s3cret@dev.azure.com/contoso/platform/_git/fleet-infra",
        "http://contoso:s3cret@dev.azure.com/contoso/platform/_git/fleet-infra",
        "https://contoso:s3cret@dev.azure.com/contoso/platform",
        "https://contoso:s3cret@dev.azure.com/contoso/platform/_git/fleet-infra?x=1",
        "https://contoso:s3c@ret@dev.azure.com/contoso/../_git/r",
        "https://contoso:s3cret@dev.azure.com/contoso/platform/_git/fleet-infra\n",
        "https://contoso:s3cret@dev.azure.com:bad/contoso/platform/_git/fleet-infra",
        "contoso:s3cret@dev.azure.com/contoso/platform/_git/fleet-infra",
        "ssh://git:s3cret@ssh.dev.azure.com/contoso/platform/fleet-infra",
    ],
)
def test_a_password_is_never_echoed_in_an_error(url: str) -> None:
    with pytest.raises(UserError) as caught:
        parse_repository_url(url)
    assert "s3cret" not in str(caught.value)
    assert "s3c" not in str(caught.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("contoso", "https://dev.azure.com/contoso"),
        (" Contoso-2 ", "https://dev.azure.com/Contoso-2"),
        ("https://dev.azure.com/contoso", "https://dev.azure.com/contoso"),
        ("https://dev.azure.com/contoso/", "https://dev.azure.com/contoso"),
        ("HTTPS://DEV.AZURE.COM/contoso//", "https://dev.azure.com/contoso"),
        ("https://contoso.visualstudio.com/", "https://contoso.visualstudio.com"),
        ("https://contoso.visualstudio.com/DefaultCollection/", "https://contoso.visualstudio.com/DefaultCollection"),
        ("https://tfs.example.com/tfs/DefaultCollection/", "https://tfs.example.com/tfs/DefaultCollection"),
        ("https://ado.example.com:8443/My Collection", "https://ado.example.com:8443/My%20Collection"),
        ("https://ado.example.com:8443/My%20Collection/", "https://ado.example.com:8443/My%20Collection"),
        ("https://[fd00::1]:8443/coll", "https://[fd00::1]:8443/coll"),
    ],
)
def test_organization_url(value: str, expected: str) -> None:
    assert organization_url(value) == expected


def test_organization_url_http_needs_the_flag() -> None:
    with pytest.raises(UserError, match="uses http.*--allow-insecure-http"):
        organization_url("http://127.0.0.1:8080/sandbox-org")
    assert organization_url("http://127.0.0.1:8080/sandbox-org/", allow_insecure_http=True) == (
        "http://127.0.0.1:8080/sandbox-org"
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "--organization is empty"),
        ("contoso/platform", "is neither an organization name nor a URL"),
        ("-contoso", "is neither an organization name nor a URL"),
        ("dev.azure.com/contoso", "is neither an organization name nor a URL"),
        ("ftp://dev.azure.com/contoso", "scheme 'ftp' is not supported"),
        ("https://dev.azure.com", "must be https://dev.azure.com/<org>"),
        ("https://dev.azure.com/contoso/platform", "must be https://dev.azure.com/<org>"),
        ("https://dev.azure.com/contoso/platform/_git/fleet-infra", "is a repository URL"),
        ("https://ado.example.com/coll/platform/_git/fleet-infra", "is a repository URL"),
        ("https://contoso.visualstudio.com/platform", "must be https://<org>.visualstudio.com"),
        ("https://ssh.dev.azure.com/contoso", "is an SSH host"),
        ("https://ado.example.com/coll/../x", "'..'"),
        ("https://dev.azure.com/contoso?x=1", "has a query or fragment"),
        ("https://dev.azure.com/contoso\n", "contains a control character"),
        ("https://user:s3cret@dev.azure.com/contoso", "must not carry a user name or password"),
        ("https://user@dev.azure.com/contoso", "must not carry a user name or password"),
    ],
)
def test_organization_url_errors(value: str, message: str) -> None:
    with pytest.raises(UserError) as caught:
        organization_url(value)
    assert message in caught.value.message
    assert caught.value.message.startswith("--organization")
    assert "s3cret" not in str(caught.value)


def test_with_collection_url_sets_only_the_rest_base() -> None:
    parsed = parse_repository_url("ssh://git@ado.example.com:22/v3/Fabrikam/platform/fleet-infra")
    assert parsed.collection_url is None
    updated = parsed.with_collection_url("https://ado.example.com/tfs/Fabrikam/")
    assert updated.collection_url == "https://ado.example.com/tfs/Fabrikam"
    assert dataclasses.replace(updated, collection_url=None) == parsed
    assert parsed.collection_url is None  # frozen: the original is untouched
    assert parse_repository_url(HTTPS).with_collection_url("contoso").collection_url == COLLECTION


def test_with_collection_url_http_follows_the_repository_url_or_the_flag() -> None:
    sandbox_ssh = parse_repository_url("ssh://root@127.0.0.1:2222/v3/sandbox-org/platform/fleet-infra")
    with pytest.raises(UserError, match="--allow-insecure-http"):
        sandbox_ssh.with_collection_url("http://127.0.0.1:8080/sandbox-org")
    assert (
        sandbox_ssh.with_collection_url("http://127.0.0.1:8080/sandbox-org", allow_insecure_http=True).collection_url
        == "http://127.0.0.1:8080/sandbox-org"
    )
    over_http = parse_repository_url(
        "http://127.0.0.1:8080/sandbox-org/platform/_git/fleet-infra", allow_insecure_http=True
    )
    assert over_http.with_collection_url("http://127.0.0.1:9090/sandbox-org/").collection_url == (
        "http://127.0.0.1:9090/sandbox-org"
    )
    with pytest.raises(UserError, match="is a repository URL"):
        over_http.with_collection_url("http://127.0.0.1:8080/sandbox-org/platform/_git/fleet-infra")


def test_with_collection_url_refuses_a_plain_git_url() -> None:
    with pytest.raises(UserError, match="applies only to Azure DevOps repositories"):
        parse_repository_url("https://github.com/o/r.git").with_collection_url("contoso")


def test_the_sandbox_urls_parse_to_its_names(azdo_sandbox: Sandbox) -> None:
    sandbox = azdo_sandbox
    project = sandbox.world.add_project("Mein Projekt (Ä)")
    repository = sandbox.world.create_repository(project, "flöte infra")
    for repo, project_name, repo_name in (
        (sandbox.repository, sandbox.project.name, sandbox.repository.name),
        (repository, "Mein Projekt (Ä)", "flöte infra"),
    ):
        url = sandbox.azdo.repo_url(repo)
        parsed = parse_repository_url(url, allow_insecure_http=True)
        assert (parsed.kind, parsed.transport) == ("server", "http")
        assert (parsed.organization, parsed.project, parsed.repository) == (sandbox.world.org, project_name, repo_name)
        assert parsed.collection_url == sandbox.org_url
        assert parse_repository_url(parsed.git_url, allow_insecure_http=True).repository == repo_name
    with pytest.raises(UserError, match="--allow-insecure-http"):
        parse_repository_url(sandbox.repo_url)


def test_the_sandbox_ssh_url_is_kept_for_flux(ssh_sandbox: Sandbox) -> None:
    sandbox = ssh_sandbox
    assert sandbox.ssh_url is not None
    parsed = parse_repository_url(sandbox.ssh_url)
    assert (parsed.kind, parsed.transport, parsed.collection_url) == ("server", "ssh", None)
    assert (parsed.organization, parsed.project, parsed.repository) == (
        sandbox.world.org,
        sandbox.project.name,
        sandbox.repository.name,
    )
    assert parsed.ssh_url == parsed.git_url == sandbox.ssh_url
    assert resolve_sync_target(SyncOptions(url=parsed.ssh_url)).url == sandbox.ssh_url
    with_rest = parsed.with_collection_url(sandbox.org_url, allow_insecure_http=True)
    assert with_rest.collection_url == sandbox.org_url
