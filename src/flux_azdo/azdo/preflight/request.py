"""What a preflight is asked: the repository, the branch, what may be created, and the credentials of this run.

`flux_azdo.azdo.access` builds it from flags and the environment (`check` and, later, `bootstrap` share that);
tests build it directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from flux_azdo.azdo.credentials import AzureDevOpsToken
from flux_azdo.azdo.urls import RepositoryUrl
from flux_azdo.git.auth import GitAuth
from flux_azdo.git.ssh import SshKeyInfo

#: What the cluster will hold afterwards: decides the warnings about short-lived and expiring tokens.
#: "separate-token": a token of its own, not this run's (the pipeline task's clusterPat), vetted by
#: `bootstrap_steps.credentials.cluster_source_secret`; the run's token is then not the cluster's concern.
ClusterCredential = Literal["token", "ssh", "workload-identity", "separate-token"]


@dataclass(frozen=True)
class PreflightRequest:
    url: RepositoryUrl
    branch: str = "main"
    create_repository: bool = False
    create_branch: bool = False
    #: The REST API credential (None: only the git-level checks run).
    token: AzureDevOpsToken | None = None
    #: What git uses this run (None with an https URL and a token: the token).
    git_auth: GitAuth = None
    ssh_key: SshKeyInfo | None = None
    cluster_credential: ClusterCredential = "token"
    #: Seconds each call to Azure DevOps and git may take.
    timeout: float = 30.0
