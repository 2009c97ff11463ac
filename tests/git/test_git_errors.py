"""git's stderr, as git and ssh print it, mapped to one actionable line without secrets or temporary paths.

The sandbox tests produce most of these for real; the texts here cover the forms it cannot produce (plain git
servers, curl's 404) and the scrubbing rules.
"""

from __future__ import annotations

import pytest

from flux_azdo.git import (
    BranchNotFound,
    BranchPolicyRejected,
    GitAuthenticationFailed,
    GitError,
    GitPermissionDenied,
    HostKeyMismatch,
    KeyRejected,
    RepositoryNotFound,
)
from flux_azdo.git.errors import classify, scrub

URL = "https://dev.azure.com/contoso/Fleet/_git/fleet-infra"


def mapped(stderr: str, **extra: object) -> GitError:
    return classify(stderr, operation="push to branch 'main' of", url=URL, branch="main", **extra)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("stderr", "kind", "phrase"),
    [
        (
            "remote: TF400813: Resource not available for anonymous access.\nfatal: Authentication failed for 'x'",
            GitAuthenticationFailed,
            "the token was rejected: wrong, expired or revoked",
        ),
        (
            "error: RPC failed; HTTP 401 curl 22 The requested URL returned error: 401",
            GitAuthenticationFailed,
            "rejected",
        ),
        (
            "remote: Access Denied: The Personal Access Token used has expired.\nfatal: Authentication failed",
            GitAuthenticationFailed,
            "the token has expired",
        ),
        (
            " ! [remote rejected] HEAD -> main (TF401027: You need the Git 'GenericContribute' permission to perform "
            "this action. Details: identity 'Build\\1234', scope 'branch'.)",
            GitPermissionDenied,
            "lacks the Git permission 'Contribute' (GenericContribute)",
        ),
        (
            " ! [remote rejected] HEAD -> main (TF402455: Pushes to this branch are not permitted; you must use a "
            "pull request to update this branch.)",
            BranchPolicyRejected,
            "'Bypass policies when pushing' (PolicyExempt)",
        ),
        (
            "@@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\nHost key verification failed.",
            HostKeyMismatch,
            "not the pinned one",
        ),
        (
            "No RSA host key is known for [127.0.0.1]:2222 and you have requested strict checking.\n"
            "Host key verification failed.",
            HostKeyMismatch,
            "host key verification failed",
        ),
        (
            "Unable to negotiate with 127.0.0.1 port 22: no matching host key type found. Their offer: rsa-sha2-512",
            HostKeyMismatch,
            "(the server offers rsa-sha2-512). Set --ssh-hostkey-algos",
        ),
        ("git@ssh.dev.azure.com: Permission denied (publickey).", KeyRejected, "refused the SSH key"),
        (
            "remote: TF401019: The Git repository with name or identifier x does not exist or you do not have "
            "permissions for the operation you are attempting.\nfatal: repository 'x' not found",
            RepositoryNotFound,
            "(TF401019)",
        ),
        ("fatal: '/srv/git/x' does not appear to be a git repository", RepositoryNotFound, "does not exist"),
        ("fatal: unable to access 'x': The requested URL returned error: 404", RepositoryNotFound, "does not exist"),
        ("fatal: couldn't find remote ref refs/heads/flux", BranchNotFound, "branch 'flux' does not exist"),
        ("warning: Remote branch flux not found in upstream origin", BranchNotFound, "branch 'flux' does not exist"),
        ("fatal: unable to access 'x': Could not resolve host: dev.azure.com", GitError, "cannot reach the server"),
        (
            "fatal: unable to access 'x': The requested URL returned error: 302",
            GitError,
            "the server redirects to another address (HTTP 302), and git does not follow redirects here so that the "
            "credentials never reach another host: use the URL it redirects to as --url",
        ),
        (
            "Unable to negotiate with 10.0.0.5 port 22: no matching key exchange method found. Their offer: "
            "diffie-hellman-group1-sha1",
            GitError,
            "have no key exchange method in common (the server offers diffie-hellman-group1-sha1)",
        ),
        (
            "Unable to negotiate with 10.0.0.5 port 22: no matching cipher found. Their offer: 3des-cbc",
            GitError,
            "have no cipher in common (the server offers 3des-cbc)",
        ),
        (
            "error: RPC failed; curl 56 Recv failure: Connection reset by peer\nfatal: expected flush after ref listing",
            GitError,
            "the connection broke or the server failed",
        ),
        (
            "error: RPC failed; HTTP 503 curl 22 The requested URL returned error: 503",
            GitError,
            "the connection broke or the server failed",
        ),
        (
            "error: RPC failed; HTTP 413 curl 22 The requested URL returned error: 413",
            GitError,
            "failed: error: RPC failed; HTTP 413",
        ),
    ],
)
def test_mapping(stderr: str, kind: type[GitError], phrase: str) -> None:
    error = mapped(stderr)
    assert type(error) is kind
    assert phrase in error.message
    assert "\n" not in error.message
    if kind is not BranchNotFound:
        assert error.message.startswith(f"git push to branch 'main' of {URL} ")


def test_only_a_broken_connection_or_a_failing_server_is_transient() -> None:
    assert mapped("error: RPC failed; curl 52 Empty reply from server").transient
    assert mapped("fatal: the remote end hung up unexpectedly").transient
    assert mapped("error: RPC failed; HTTP 429 curl 22 The requested URL returned error: 429").transient
    for answer in (
        "error: RPC failed; HTTP 413 curl 22 The requested URL returned error: 413",
        "error: RPC failed; HTTP 401 curl 22 The requested URL returned error: 401",
        "fatal: unable to access 'x': The requested URL returned error: 302",
        "fatal: unable to access 'x': Failed to connect to 127.0.0.1 port 9: Connection refused",
        "Unable to negotiate with 10.0.0.5 port 22: no matching cipher found. Their offer: 3des-cbc",
    ):
        assert not mapped(answer).transient, answer


def test_authentication_failures_say_why() -> None:
    reasons = {
        "fatal: Authentication failed for 'x'": "invalid",
        "remote: Access Denied: The Personal Access Token used has expired.\nfatal: Authentication failed": "expired",
        "remote: TF400813: The user 'u' is not authorized to access this resource.\nfatal: Authentication failed": (
            "not-authorized"
        ),
    }
    for stderr, reason in reasons.items():
        error = mapped(stderr)
        assert isinstance(error, GitAuthenticationFailed) and error.reason == reason
    missing = mapped("fatal: Authentication failed for 'x'", has_credentials=False)
    assert isinstance(missing, GitAuthenticationFailed) and missing.reason == "missing"
    assert "none were given" in missing.message and "--password" in missing.message


def test_a_refused_key_names_the_organisation_s_keys_page_when_known() -> None:
    page = "https://dev.azure.com/contoso/_usersSettings/keys"
    error = mapped("git@ssh.dev.azure.com: Permission denied (publickey).", keys_page=page)
    assert isinstance(error, KeyRejected)
    assert f"User settings > SSH public keys ({page})" in error.message


def test_permission_error_keeps_permission_and_identity() -> None:
    error = mapped(
        "TF401027: You need the Git 'CreateBranch' permission to perform this action. Details: identity 'Build\\abc', scope 'repository'."
    )
    assert isinstance(error, GitPermissionDenied)
    assert (error.permission, error.identity) == ("CreateBranch", "Build\\abc")
    assert "'Create branch' (CreateBranch)" in error.message


def test_unknown_failures_keep_the_explaining_lines_only() -> None:
    error = mapped("Counting objects: 3\nremote: something odd happened\nerror: failed to push some refs to 'x'")
    assert type(error) is GitError
    assert error.message.endswith("failed: remote: something odd happened error: failed to push some refs to 'x'")


def test_secrets_and_private_paths_are_scrubbed() -> None:
    text = (
        "fatal: could not read '/tmp/flux-azdo-git-abc/identity': tok3n-s3cret in Authorization: Basic OnRvazNu "
        "and Authorization: Bearer eyJ.x.y"
    )
    cleaned = scrub(text, ["tok3n-s3cret"], ["/tmp/flux-azdo-git-abc"])
    assert (
        cleaned
        == "fatal: could not read '<temp>/identity': *** in Authorization: Basic *** and Authorization: Bearer ***"
    )
    error = mapped(text, secrets=["tok3n-s3cret"], paths=["/tmp/flux-azdo-git-abc"])
    assert "tok3n" not in error.message and "/tmp/flux-azdo-git-abc" not in error.message
