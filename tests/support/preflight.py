"""What the preflight tests share: tokens as the CLI would build them, requests for the sandbox, report lookups."""

from __future__ import annotations

from typing import Any

from flux_azdo.azdo.credentials import AzureDevOpsToken
from flux_azdo.azdo.preflight import CheckItem, CheckReport, PreflightRequest
from flux_azdo.azdo.urls import parse_repository_url
from flux_azdo.git.auth import SshAuth, TokenAuth
from flux_azdo.git.ssh import inspect_private_key, known_hosts_for
from flux_azdo.sandbox.runtime import Sandbox

BUILD_SERVICE = "platform Build Service (sandbox-org)"


def pat_token(secret: str) -> AzureDevOpsToken:
    return AzureDevOpsToken(secret, "basic", "password", "GIT_PASSWORD")


def job_token(secret: str) -> AzureDevOpsToken:
    return AzureDevOpsToken(secret, "bearer", "job-token", "SYSTEM_ACCESSTOKEN")


def https_request(
    sandbox: Sandbox, token: AzureDevOpsToken | None, *, url: str | None = None, **options: Any
) -> PreflightRequest:
    parsed = parse_repository_url(url or sandbox.repo_url, allow_insecure_http=True)
    auth = TokenAuth(token) if token is not None else None
    return PreflightRequest(url=parsed, token=token, git_auth=auth, timeout=20.0, **options)


def ssh_request(sandbox: Sandbox, key: bytes, *, api_token: AzureDevOpsToken | None) -> PreflightRequest:
    assert sandbox.ssh_url is not None
    url = parse_repository_url(sandbox.ssh_url).with_collection_url(sandbox.org_url, allow_insecure_http=True)
    auth = SshAuth(key, None, known_hosts_for(url, sandbox.known_hosts_path))
    info = inspect_private_key(key, None)
    return PreflightRequest(
        url=url, token=api_token, git_auth=auth, ssh_key=info, cluster_credential="ssh", timeout=20.0
    )


def item(report: CheckReport, key: str) -> CheckItem:
    found = [i for i in report.items if i.key == key]
    assert len(found) == 1, f"{key} not in {[i.key for i in report.items]}"
    return found[0]


def keys(report: CheckReport, status: str) -> list[str]:
    return [i.key for i in report.items if i.status == status]
