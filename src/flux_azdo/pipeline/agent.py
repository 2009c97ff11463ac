"""What the Azure Pipelines agent tells a task about its job, read from the environment it starts the task with.

The agent exports every public variable with its name mangled (`System.TeamProject` -> `SYSTEM_TEAMPROJECT`) and
hands the job's own OAuth token to tasks as the auth parameter of the `SystemVssConnection` endpoint, whether or
not the pipeline maps `System.AccessToken`. Reading all of it here, once, keeps the rest of the task independent
of environment variable names, and lets a run outside a pipeline stop with one line that names what is missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from flux_azdo.errors import UserError

JOB_TOKEN_VARIABLE = "ENDPOINT_AUTH_PARAMETER_SYSTEMVSSCONNECTION_ACCESSTOKEN"
_NOT_IN_A_JOB = "not running in an Azure Pipelines job"
_RUN_AS_A_STEP = "run it as a task on an Azure Pipelines agent (FluxBootstrap@1 in a pipeline job sets them)"


@dataclass(frozen=True)
class AgentContext:
    """The job: where its organisation and project are, its ids, its folders and its token."""

    #: `https://dev.azure.com/org/` (always with the trailing slash, as the agent gives it).
    collection_uri: str
    project: str
    temp_directory: Path
    #: The checkout (BUILD_SOURCESDIRECTORY, else SYSTEM_DEFAULTWORKINGDIRECTORY): where an empty filePath points.
    sources_directory: Path | None = None
    #: What azure-identity's AzurePipelinesCredential posts to for a service connection's OIDC token.
    oidc_request_uri: str = ""
    debug: bool = False
    job_token: str | None = field(default=None, repr=False)

    def require_job_token(self, purpose: str) -> str:
        if not self.job_token:
            raise UserError(
                f"the job's access token is not available, and {purpose} needs it",
                fix="run the task in a job that has its OAuth token (classic pipelines: enable 'Allow scripts to "
                "access the OAuth token' on the agent job)",
            )
        return self.job_token


def _value(environ: Mapping[str, str], *names: str) -> str:
    for name in names:
        value = environ.get(name, "").strip()
        if value:
            return value
    return ""


def _is_true(text: str) -> bool:
    return text.strip().lower() == "true"


def oidc_request_uri(environ: Mapping[str, str], collection_uri: str) -> str:
    """SYSTEM_OIDCREQUESTURI, else the same URL built from the job's ids (agents before 3.225 do not set it):
    `{collection}{projectId}/_apis/distributedtask/hubs/{hub}/plans/{planId}/jobs/{jobId}/oidctoken`, the hub
    being `release` for classic releases and `build` otherwise. Empty when an id is missing."""
    given = _value(environ, "SYSTEM_OIDCREQUESTURI")
    if given:
        return given
    project_id = _value(environ, "SYSTEM_TEAMPROJECTID")
    plan_id = _value(environ, "SYSTEM_PLANID")
    job_id = _value(environ, "SYSTEM_JOBID")
    if not (project_id and plan_id and job_id):
        return ""
    hub = "release" if _value(environ, "SYSTEM_HOSTTYPE").lower() == "release" else "build"
    parts = (quote(project_id, safe=""), hub, quote(plan_id, safe=""), quote(job_id, safe=""))
    return "{}{}/_apis/distributedtask/hubs/{}/plans/{}/jobs/{}/oidctoken".format(collection_uri, *parts)


def agent_context(environ: Mapping[str, str]) -> AgentContext:
    """The job as the environment describes it; a UserError naming the first missing variable outside a job."""
    collection = _value(
        environ, "SYSTEM_COLLECTIONURI", "SYSTEM_TEAMFOUNDATIONCOLLECTIONURI", "ENDPOINT_URL_SYSTEMVSSCONNECTION"
    )
    if not collection:
        raise UserError(f"{_NOT_IN_A_JOB}: SYSTEM_COLLECTIONURI is not set", fix=_RUN_AS_A_STEP)
    project = _value(environ, "SYSTEM_TEAMPROJECT")
    if not project:
        raise UserError(f"{_NOT_IN_A_JOB}: SYSTEM_TEAMPROJECT is not set", fix=_RUN_AS_A_STEP)
    temp = _value(environ, "AGENT_TEMPDIRECTORY")
    if not temp:
        raise UserError(f"{_NOT_IN_A_JOB}: AGENT_TEMPDIRECTORY is not set", fix=_RUN_AS_A_STEP)
    if not Path(temp).is_dir():
        raise UserError(
            f"AGENT_TEMPDIRECTORY {temp} is not a folder",
            fix="run the task on an agent whose work folder is writable",
        )
    sources = _value(environ, "BUILD_SOURCESDIRECTORY", "SYSTEM_DEFAULTWORKINGDIRECTORY")
    collection = collection if collection.endswith("/") else collection + "/"
    return AgentContext(
        collection_uri=collection,
        project=project,
        temp_directory=Path(temp),
        sources_directory=Path(sources) if sources else None,
        oidc_request_uri=oidc_request_uri(environ, collection),
        debug=_is_true(environ.get("SYSTEM_DEBUG", "")),
        job_token=_value(environ, JOB_TOKEN_VARIABLE) or None,
    )
