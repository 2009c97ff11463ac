"""The plumbing of the CLI-level tests: a kubeconfig of a user of the test's own (its requests are counted by that
user's name), the sandbox admin's connection for looking at the cluster, one `main(argv)` run with its output, the
`bootstrap`/`plan` flags every run shares, and reads of the sandbox's bare repository."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from flux_azdo.cli import main
from flux_azdo.cluster.client import Cluster, ClusterAccess
from flux_azdo.sandbox.kube import AccessRule
from flux_azdo.sandbox.runtime import Sandbox

#: A user's flux-system/kustomization.yaml that adds the rsa-sha2 host key patch to source-controller.
SSH_PATCH_KUSTOMIZATION = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- gotk-components.yaml
- gotk-sync.yaml
patches:
- patch: |
    - op: add
      path: /spec/template/spec/containers/0/args/-
      value: --ssh-hostkey-algos=rsa-sha2-512,rsa-sha2-256
  target:
    kind: Deployment
    name: source-controller
"""


def user_kubeconfig(sandbox: Sandbox, user: str, path: Path) -> Path:
    """A kubeconfig at `path` of `user` (added to the sandbox cluster) with every right: the requests it makes are
    the test's alone."""
    assert sandbox.kube is not None
    token = sandbox.kube.add_user(user, [AccessRule(verbs=("*",))])
    sandbox.kube.write_kubeconfig(path, token=token)
    return path


@contextlib.contextmanager
def admin_cluster(sandbox: Sandbox) -> Iterator[Cluster]:
    """A separate connection (the sandbox's admin) for looking at the cluster afterwards."""
    with Cluster(ClusterAccess(sandbox.kubeconfig_path)) as connection:
        yield connection


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """`flux-azdo <argv>` in this process: its exit code, stdout and stderr."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def bootstrap_argv(
    command: str,
    sandbox: Sandbox,
    kubeconfig: Path,
    sample_file: Path,
    *extra: str,
    url: str | None = None,
    path: str = "clusters/sandbox",
) -> list[str]:
    """`bootstrap` or `plan` into `path` of the sandbox repository (`url`: its http clone URL unless given); flags
    in `extra` come last, so they override these (argparse keeps the last)."""
    return [
        command,
        "--url",
        url or sandbox.repo_url,
        "--allow-insecure-http",
        "--manifests",
        str(sample_file),
        "--kubeconfig",
        str(kubeconfig),
        "--path",
        path,
        "--timeout",
        "60s",
        *extra,
    ]


def git(sandbox: Sandbox, *args: str, check: bool = False) -> str:
    """`git <args>` on the sandbox's bare repository: its stdout stripped, "" when it fails (raises with `check`)."""
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0"}
    completed = subprocess.run(
        ["git", "--git-dir", str(sandbox.repository.git_dir), *args],
        capture_output=True,
        text=True,
        env=env,
        check=check,
    )
    return completed.stdout.strip() if completed.returncode == 0 else ""


def head(sandbox: Sandbox, *, check: bool = False) -> str:
    """The sha main points at ("" when it does not exist, unless `check`)."""
    return git(sandbox, "rev-parse", "refs/heads/main", check=check)


def commits(sandbox: Sandbox) -> list[str]:
    """Subjects of the commits on main, newest first (none: the branch does not exist)."""
    return git(sandbox, "log", "--format=%s", "refs/heads/main").splitlines()


def writes_by(sandbox: Sandbox, user: str) -> list[str]:
    """ "verb resource namespace/name" of each write request `user` made, in order."""
    assert sandbox.kube is not None
    return [
        f"{r.verb} {r.resource} {r.namespace}/{r.name}" for r in sandbox.kube.requests if r.user == user and r.is_write
    ]
