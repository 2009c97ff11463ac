"""Warnings about what the cluster will keep: a credential that dies with the job, or one that expires.

With an https URL and `--provider generic`, `flux bootstrap` stores this run's token in the cluster's Secret. A
pipeline's job token stops working when its job ends and an Entra token after about an hour, so either would
break Flux's sync soon after the bootstrap; a PAT works until its expiry date, and then Flux stops syncing.
"""

from __future__ import annotations

from flux_azdo.azdo.preflight.facts import Facts, credential_kind
from flux_azdo.azdo.preflight.report import CheckItem
from flux_azdo.azdo.preflight.request import PreflightRequest

_OWN_CREDENTIAL = (
    "give the cluster its own credential: a PAT (GIT_PASSWORD), an SSH key (an ssh:// URL with --private-key-file), "
    "or --provider azure (workload identity)"
)


def decide_cluster(request: PreflightRequest, facts: Facts) -> list[CheckItem]:
    if request.cluster_credential == "separate-token":
        # The cluster gets a PAT of its own (the pipeline task's clusterPat); vetted where it is read.
        return [_pat_expiry("the PAT given for the cluster")]
    if request.cluster_credential != "token" or request.token is None:
        return []
    kind = credential_kind(request.token, facts.who)
    if kind == "job-token":
        return [
            CheckItem(
                "cluster-credential",
                "warn",
                "the job token is this run's credential only: it stops working when the job ends, so it must not be "
                "the cluster's credential",
                fix=_OWN_CREDENTIAL,
            )
        ]
    if kind == "entra":
        return [
            CheckItem(
                "cluster-credential",
                "warn",
                "a Microsoft Entra token lives about an hour: it must not be the cluster's credential",
                fix=_OWN_CREDENTIAL,
            )
        ]
    if kind == "pat" and facts.who is not None:
        return [_pat_expiry("the PAT")]
    return []


def _pat_expiry(which: str) -> CheckItem:
    return CheckItem(
        "pat-expiry",
        "warn",
        f"{which} will be stored in the cluster (Secret flux-system): Flux stops syncing when it expires",
        fix="use --provider azure (workload identity: nothing to expire) or an SSH key; otherwise renew the "
        "PAT before its expiry date and update the Secret (flux-azdo rotate-credentials)",
    )
