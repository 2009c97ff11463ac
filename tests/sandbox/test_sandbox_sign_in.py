"""The sign-in page: what the sandbox Azure DevOps answers a REST call without a valid credential.

Evidence (see `sandbox.azure_devops.rest.sign_in_redirect`): without `X-TFS-FedAuthRedirect: Suppress` the service
redirects (302, "Object moved") to its `_signin` page and clients that follow land on HTML (203); with the header
the same request is a 401. The SDK always sends the header (azure/devops/client.py); `server.sign_in_page = True`
forces the HTML answer for clients that send it, so product code can meet the SDK's DeserializationError.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from azure.core.exceptions import DeserializationError
from azure.devops.connection import Connection
from azure.devops.exceptions import AzureDevOpsAuthenticationError, AzureDevOpsServiceError
from msrest.authentication import BasicAuthentication

from support.azdo_world import Scenario, running_scenario

SUPPRESS = {"X-TFS-FedAuthRedirect": "Suppress"}


@pytest.fixture
def scenario(tmp_path: Path) -> Iterator[Scenario]:
    with running_scenario(tmp_path) as running:
        yield running


def core_client(scenario: Scenario, token: str) -> Any:
    return Connection(base_url=scenario.server.org_url, creds=BasicAuthentication("", token)).clients.get_core_client()


def projects_url(scenario: Scenario) -> str:
    return f"{scenario.server.org_url}/_apis/projects?api-version=7.1"


@pytest.mark.parametrize("auth", [("", "not-a-real-token"), None], ids=["wrong-token", "anonymous"])
def test_without_suppress_an_unauthenticated_call_is_redirected_to_sign_in(
    scenario: Scenario, auth: tuple[str, str] | None
) -> None:
    reply = requests.get(projects_url(scenario), auth=auth, allow_redirects=False, timeout=10)
    assert reply.status_code == 302
    assert reply.headers["Content-Type"].startswith("text/html")
    location = reply.headers["Location"]
    assert location.startswith(f"{scenario.server.url}/_signin?")
    query = parse_qs(urlsplit(location).query)
    assert query["reply_to"] == [projects_url(scenario)]
    assert query["realm"] == ["127.0.0.1"]
    assert b"<title>Object moved</title>" in reply.content
    followed = requests.get(projects_url(scenario), auth=auth, timeout=10)
    assert followed.status_code == 203
    assert followed.headers["Content-Type"].startswith("text/html")
    assert b"Sign In" in followed.content
    assert [r.status_code for r in followed.history] == [302]


def test_with_suppress_the_same_call_is_a_401(scenario: Scenario) -> None:
    reply = requests.get(
        projects_url(scenario), auth=("", "not-a-real-token"), headers=SUPPRESS, allow_redirects=False, timeout=10
    )
    assert reply.status_code == 401
    assert reply.content == b""
    assert reply.headers["WWW-Authenticate"].startswith("Basic realm=")
    # Any case of the value, as header values are compared by the service.
    lower = requests.get(
        projects_url(scenario),
        auth=("", "not-a-real-token"),
        headers={"x-tfs-fedauthredirect": "suppress"},
        allow_redirects=False,
        timeout=10,
    )
    assert lower.status_code == 401


def test_valid_and_expired_credentials_are_never_redirected(scenario: Scenario) -> None:
    ok = requests.get(projects_url(scenario), auth=("", scenario.admin_pat), allow_redirects=False, timeout=10)
    assert ok.status_code == 200 and ok.json()["count"] == 1
    expired = scenario.world.issue_pat(
        scenario.admin, ["vso.project"], expires=datetime.now(timezone.utc) - timedelta(minutes=1)
    )
    # The service knows the token: its JSON 401 stays (UNVERIFIED without the header).
    reply = requests.get(projects_url(scenario), auth=("", expired), allow_redirects=False, timeout=10)
    assert reply.status_code == 401
    assert reply.json()["typeKey"] == "AccessCheckException"


def test_git_is_never_redirected(scenario: Scenario) -> None:
    """git sends no such header and gets the Basic challenge, as from the service."""
    url = f"{scenario.server.repo_url(scenario.repo)}/info/refs?service=git-upload-pack"
    reply = requests.get(url, auth=("", "not-a-real-token"), allow_redirects=False, timeout=10)
    assert reply.status_code == 401
    assert reply.text.startswith("TF400813")


def test_sdk_always_suppresses_and_gets_the_authentication_error(scenario: Scenario) -> None:
    with pytest.raises(AzureDevOpsAuthenticationError, match="requires user authentication"):
        core_client(scenario, "not-a-real-token").get_project("Fleet Project")


def test_sdk_without_suppress_meets_the_sign_in_page(scenario: Scenario) -> None:
    """The SDK's own switch off (`_suppress_fedauth_redirect`): msrest follows the 302 for a GET and cannot read
    the 203 HTML page."""
    assert core_client(scenario, scenario.admin_pat).get_project("Fleet Project").name == "Fleet Project"
    client = core_client(scenario, "not-a-real-token")  # the resource locations are cached now
    client._suppress_fedauth_redirect = False
    with pytest.raises(DeserializationError, match="Cannot deserialize content-type: text/html"):
        client.get_project("Fleet Project")


def test_sign_in_page_switch_answers_203_html_even_with_suppress(scenario: Scenario) -> None:
    scenario.server.sign_in_page = True
    reply = requests.get(
        projects_url(scenario), auth=("", "not-a-real-token"), headers=SUPPRESS, allow_redirects=False, timeout=10
    )
    assert reply.status_code == 203
    assert reply.headers["Content-Type"].startswith("text/html")
    assert b"Sign In" in reply.content
    # The SDK fails on its very first call (the location list) with msrest's DeserializationError.
    with pytest.raises(DeserializationError, match="Cannot deserialize content-type: text/html"):
        core_client(scenario, "not-a-real-token").get_project("Fleet Project")
    # Valid credentials are not affected; an expired PAT still gets its 401.
    assert core_client(scenario, scenario.admin_pat).get_project("Fleet Project").name == "Fleet Project"
    expired = scenario.world.issue_pat(
        scenario.admin, ["vso.project"], expires=datetime.now(timezone.utc) - timedelta(minutes=1)
    )
    with pytest.raises(AzureDevOpsServiceError, match="has expired"):
        core_client(scenario, expired).get_project("Fleet Project")
    scenario.server.sign_in_page = False
    with pytest.raises(AzureDevOpsAuthenticationError):
        core_client(scenario, "not-a-real-token").get_project("Fleet Project")


def test_the_sign_in_page_only_serves_reads(scenario: Scenario) -> None:
    assert requests.get(f"{scenario.server.url}/_signin", timeout=10).status_code == 203
    assert requests.head(f"{scenario.server.url}/_signin", timeout=10).status_code == 203
    assert requests.delete(f"{scenario.server.url}/_signin", timeout=10).status_code == 405
