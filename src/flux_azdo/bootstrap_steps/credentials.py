"""What the cluster stores to reach the repository, built from this run's credentials, or refused.

`flux bootstrap git --token-auth` stores the password it was given. In a pipeline that is easily
`$(System.AccessToken)`: it works for the bootstrap and stops working when the job ends, and Flux then fails
every fetch with an authentication error nobody connects to the bootstrap. An Entra token dies within the hour.
Neither is ever stored: the cluster gets a PAT, an SSH key with a pinned known_hosts, or (with `--provider
azure`) nothing, since source-controller then signs in with its workload identity.

Azure DevOps has no deploy keys, so the SSH key is always the user's own (`--private-key-file`, the key git
pushes with): a key generated here, as Flux does without one, could not be given access to the repository.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flux_azdo.errors import UserError

if TYPE_CHECKING:
    from flux_azdo.azdo.credentials import AzureDevOpsToken
    from flux_azdo.git.auth import GitAuth
    from flux_azdo.manifests.sourcesecret import SourceSecret
    from flux_azdo.manifests.sync import SyncOptions

OWN_CREDENTIAL = (
    "give the cluster its own credential: a PAT (in GIT_PASSWORD or through --password-stdin), an SSH key (the "
    "ssh:// URL with --private-key-file), or --provider azure (workload identity, nothing stored)"
)


def refuse_short_lived(token: AzureDevOpsToken) -> None:
    """The job token and Entra tokens expire within hours: never the cluster's credential."""
    if token.source == "job-token":
        raise UserError(
            f"the pipeline's job token (from {token.origin or 'SYSTEM_ACCESSTOKEN'}) cannot be stored in the cluster: "
            "it stops working when this job ends, and Flux would then fail every fetch",
            fix=OWN_CREDENTIAL,
        )
    if token.source == "entra":
        raise UserError(
            "a Microsoft Entra token cannot be stored in the cluster: it expires within about an hour, and Flux "
            "would then fail every fetch",
            fix=OWN_CREDENTIAL,
        )


def cluster_source_secret(
    sync: SyncOptions,
    git_auth: GitAuth,
    token: AzureDevOpsToken | None,
    *,
    known_hosts: str | None = None,
    key_origin: str = "--private-key-file",
) -> SourceSecret | None:
    """The Secret for `sync` (None with --provider azure). `known_hosts`: the text of --ssh-known-hosts, if given."""
    from flux_azdo.git.auth import SshAuth
    from flux_azdo.manifests import sourcesecret
    from flux_azdo.manifests.sync import resolve_sync_target

    if sync.provider == "azure":
        return None
    target = resolve_sync_target(sync)
    if target.transport == "ssh":
        if not isinstance(git_auth, SshAuth):
            raise UserError(
                "bootstrap over SSH needs --private-key-file: Azure DevOps has no deploy keys, so the cluster uses "
                "your key (RSA, added under User settings > SSH public keys)",
                fix="pass --private-key-file with that key, or use the https URL with a PAT",
            )
        key = sourcesecret.load_ssh_key(git_auth.private_key, git_auth.passphrase, key_origin)
        sourcesecret.require_azure_devops_key(key, target.host)
        hosts = sourcesecret.known_hosts_for(target.host, target.port, known_hosts or git_auth.known_hosts)
        return sourcesecret.ssh_secret(sync.secret_name, sync.namespace, key, hosts, git_auth.passphrase)
    if token is None:
        raise UserError(
            "no token for the cluster: with an https URL the cluster stores a PAT",
            fix="set GIT_PASSWORD, or pipe the PAT into --password-stdin; or use --provider azure",
        )
    refuse_short_lived(token)
    return sourcesecret.token_secret(sync.secret_name, sync.namespace, token.secret, sync.username or "git")
