"""Secure files (Pipelines > Library > Secure files): downloaded with the job's token, kept 0600, removed afterwards.

The agent does not put a secure file on disk for a task; it sets `SECUREFILE_NAME_<id>` and `SECUREFILE_TICKET_<id>`
for each `secureFile` input, and the task downloads it (reference azure-devops.md §2.5; the node SDK's
`TaskAgentApi.downloadSecureFile`): `GET {collection}{project}/_apis/distributedtask/securefiles/{id}?ticket=..
&download=false&api-version=5.0-preview.1` with `Accept: application/octet-stream` and the job token, as task-lib
asks. The token goes to the collection's own host only: a redirect is not followed with it (a redirect to https
elsewhere is fetched without credentials), and it travels as the request's `auth`, so a ~/.netrc on the agent
never replaces it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urljoin, urlsplit

import requests
import requests.auth

from flux_azdo.errors import UserError

if TYPE_CHECKING:
    from flux_azdo.pipeline.agent import AgentContext

API_VERSION = "5.0-preview.1"
#: A private key is a few kilobytes; anything far larger is not what the input asked for.
MAX_SIZE = 1024 * 1024
_REDIRECTS = (301, 302, 303, 307, 308)


@dataclass(frozen=True)
class SecureFileRef:
    """A secure file input's value: the file's id, its name (for messages) and the job's ticket for it."""

    id: str
    name: str
    ticket: str


def secure_file_ref(environ: Mapping[str, str], file_id: str, *, input_name: str) -> SecureFileRef:
    """The name and ticket the agent set for the secure file `file_id`, or a UserError saying how to authorise it."""
    file_id = file_id.strip()

    def variable(prefix: str) -> str:
        for key in (file_id, file_id.lower(), file_id.upper()):
            value = environ.get(f"{prefix}{key}", "").strip()
            if value:
                return value
        return ""

    ticket = variable("SECUREFILE_TICKET_")
    name = variable("SECUREFILE_NAME_") or file_id
    if not ticket:
        raise UserError(
            f"secure file {name} (input {input_name}) is not available to this job",
            fix="upload it under Pipelines > Library > Secure files, name it in the step's inputs, and authorise "
            "this pipeline to use it (the secure file > Pipeline permissions)",
        )
    return SecureFileRef(file_id, name, ticket)


def download_url(agent: AgentContext, ref: SecureFileRef) -> str:
    project = quote(agent.project, safe="")
    return (
        f"{agent.collection_uri}{project}/_apis/distributedtask/securefiles/{quote(ref.id, safe='')}"
        f"?ticket={quote(ref.ticket, safe='')}&download=false&api-version={API_VERSION}"
    )


def download_secure_file(agent: AgentContext, ref: SecureFileRef, folder: Path, *, timeout: float = 30.0) -> Path:
    """Download into `<folder>/<id>` (0600; `folder` is the run's private folder, which the caller removes)."""
    token = agent.require_job_token(f"downloading secure file {ref.name}")
    url = download_url(agent, ref)
    headers = {"Accept": "application/octet-stream"}
    try:
        response = requests.get(
            url, headers=headers, auth=_Bearer(token), timeout=timeout, allow_redirects=False, stream=True
        )
        if response.status_code in _REDIRECTS and response.headers.get("Location"):
            location = urljoin(url, response.headers["Location"])
            response.close()
            if urlsplit(location).scheme != "https":
                raise UserError(
                    f"secure file {ref.name}: the server redirected the download to a non-https address",
                    fix="check the collection URL of the job (System.CollectionUri)",
                )
            response = requests.get(
                location, headers={"Accept": "application/octet-stream"}, timeout=timeout, stream=True
            )
        with response:
            if response.status_code != 200:
                raise _download_error(ref, response.status_code)
            content = response.raw.read(MAX_SIZE + 1, decode_content=True)
    except requests.RequestException as error:
        raise UserError(
            f"secure file {ref.name} could not be downloaded from {agent.collection_uri} ({type(error).__name__})",
            fix="check that the agent reaches the organisation, then run the job again",
        ) from None
    if len(content) > MAX_SIZE:
        raise UserError(
            f"secure file {ref.name} is larger than {MAX_SIZE // 1024} KiB: it is not an SSH private key",
            fix="select the secure file that holds the private key",
        )
    from flux_azdo.files import write_private_file

    return write_private_file(Path(folder) / f"securefile-{ref.id}", content)


class _Bearer(requests.auth.AuthBase):
    """The job token as `Authorization: Bearer`: requests applies an explicit `auth` after ~/.netrc, so a netrc
    entry for the organisation's host never takes its place."""

    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


def _download_error(ref: SecureFileRef, status: int) -> UserError:
    """Azure DevOps answers a wrong ticket, a deleted file and a pipeline without permission alike (404, or 401/403
    for the token), so the fix names each."""
    if status in (401, 403, 404):
        return UserError(
            f"secure file {ref.name} could not be downloaded (HTTP {status}): it does not exist, or this pipeline "
            "may not use it",
            fix=f"check that {ref.name} is in Pipelines > Library > Secure files and that this pipeline is allowed "
            "to use it (the secure file > Pipeline permissions), then run the job again",
        )
    return UserError(
        f"secure file {ref.name} could not be downloaded (HTTP {status})",
        fix="run the job again; if it keeps failing, check the organisation's status",
    )
