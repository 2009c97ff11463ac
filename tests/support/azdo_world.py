"""Helpers for the sandbox Azure DevOps tests: a ready world + server, and the real `git` CLI with a token.

Tokens reach git the way pipelines pass them: a pre-emptive `http.extraHeader` through GIT_CONFIG_COUNT (with
GIT_ASKPASS=/bin/true so that a 401 ends in a clear "Authentication failed"), or an askpass script that reads the
token from the environment. Never in the URL or argv.
"""

from __future__ import annotations

import base64
import contextlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from flux_azdo.sandbox.azure_devops import AzureDevOpsServer
from flux_azdo.sandbox.world import Identity, Project, Repository, World

ORG = "sandbox-org"
ALL_CODE_SCOPES = ("vso.code_manage", "vso.project", "vso.profile")


@dataclass
class Scenario:
    """One organisation with a project `Fleet Project`, an empty repo `fleet`, an admin and a contributor."""

    world: World
    server: AzureDevOpsServer
    project: Project
    repo: Repository
    admin: Identity
    admin_pat: str
    contributor: Identity
    contributor_pat: str
    tmp: Path

    def user(
        self, name: str, rights: str = "contributor", scopes: tuple[str, ...] = ALL_CODE_SCOPES
    ) -> tuple[Identity, str]:
        identity = self.world.add_user(name, project_rights=rights)  # type: ignore[arg-type]
        return identity, self.world.issue_pat(identity, scopes)

    def git(self, token: str | None = None, *, bearer: bool = False) -> GitCli:
        return GitCli(self.tmp, token, bearer=bearer)


@contextlib.contextmanager
def running_scenario(tmp: Path) -> Iterator[Scenario]:
    world = World(ORG, tmp / "repos")
    project = world.add_project("Fleet Project")
    repo = world.create_repository(project, "fleet")
    admin = world.add_user("Ada Admin", project_rights="admin")
    contributor = world.add_user("Carl Contributor", project_rights="contributor")
    with AzureDevOpsServer(world) as server:
        yield Scenario(
            world=world,
            server=server,
            project=project,
            repo=repo,
            admin=admin,
            admin_pat=world.issue_pat(admin, ALL_CODE_SCOPES),
            contributor=contributor,
            contributor_pat=world.issue_pat(contributor, ALL_CODE_SCOPES),
            tmp=tmp,
        )


class GitCli:
    """The `git` command line with an isolated HOME, no prompts, and the token in the environment only."""

    def __init__(self, tmp: Path, token: str | None, *, bearer: bool = False, askpass: bool = False) -> None:
        self.tmp = tmp
        home = tmp / "home"
        home.mkdir(exist_ok=True)
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_ASKPASS": "/bin/true",
            "GIT_AUTHOR_NAME": "Sandbox Test",
            "GIT_AUTHOR_EMAIL": "test@sandbox.example",
            "GIT_COMMITTER_NAME": "Sandbox Test",
            "GIT_COMMITTER_EMAIL": "test@sandbox.example",
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "init.defaultBranch",
            "GIT_CONFIG_VALUE_0": "work",
        }
        if token is not None and askpass:
            script = tmp / "askpass.sh"
            script.write_text(
                '#!/bin/sh\ncase "$1" in Username*) echo pat;; *) printf \'%s\\n\' "$SANDBOX_TOKEN";; esac\n'
            )
            script.chmod(0o700)
            self.env.update({"GIT_ASKPASS": str(script), "SANDBOX_TOKEN": token})
        elif token is not None:
            value = f"Bearer {token}" if bearer else "Basic " + base64.b64encode(f":{token}".encode()).decode()
            self.config("http.extraHeader", f"Authorization: {value}")

    def config(self, key: str, value: str) -> None:
        count = int(self.env["GIT_CONFIG_COUNT"])
        self.env[f"GIT_CONFIG_KEY_{count}"] = key
        self.env[f"GIT_CONFIG_VALUE_{count}"] = value
        self.env["GIT_CONFIG_COUNT"] = str(count + 1)

    def run(self, *args: str, cwd: Path | None = None, check: bool = False) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["git", *args], cwd=cwd, env=self.env, capture_output=True, text=True, timeout=120)
        if check and done.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        return done

    def clone(self, url: str, name: str = "work", *, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("clone", "--quiet", url, str(self.tmp / name), check=check)

    def commit(self, checkout: str, filename: str, content: bytes | str, message: str = "change") -> str:
        directory = self.tmp / checkout
        path = directory / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        self.run("add", filename, cwd=directory, check=True)
        self.run("commit", "--quiet", "-m", message, cwd=directory, check=True)
        return self.run("rev-parse", "HEAD", cwd=directory, check=True).stdout.strip()

    def push(self, checkout: str, refspec: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.run("push", *extra, "origin", refspec, cwd=self.tmp / checkout)


def init_checkout(git: GitCli, name: str, url: str) -> Path:
    """A fresh local repository with `origin` set, for pushing into an empty sandbox repository."""
    directory = git.tmp / name
    git.run("init", "--quiet", str(directory), check=True)
    git.run("remote", "add", "origin", url, cwd=directory, check=True)
    return directory
