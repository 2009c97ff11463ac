"""Commits made "by someone else": written straight into the sandbox's bare repository, bypassing every product
path, so a test can prepare a branch (a user's kustomization.yaml, a workload) before the command under test runs."""

from __future__ import annotations

import os
import subprocess

from flux_azdo.sandbox.runtime import Sandbox


def seed(sandbox: Sandbox, files: dict[str, str], message: str) -> str:
    """One commit on main holding `files` (path -> content) on top of nothing; returns its sha."""
    index = sandbox.directory / "seed-index"
    env = {
        **os.environ,
        "GIT_DIR": str(sandbox.repository.git_dir),
        "GIT_INDEX_FILE": str(index),
        "GIT_AUTHOR_NAME": "Platform Team",
        "GIT_AUTHOR_EMAIL": "platform@example.com",
        "GIT_COMMITTER_NAME": "Platform Team",
        "GIT_COMMITTER_EMAIL": "platform@example.com",
        "GIT_CONFIG_NOSYSTEM": "1",
    }

    def git(*args: str, data: str | None = None) -> str:
        return subprocess.run(["git", *args], input=data, capture_output=True, text=True, env=env, check=True).stdout

    for path, content in files.items():
        blob = git("hash-object", "-w", "--stdin", data=content).strip()
        git("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}")
    commit = git("commit-tree", git("write-tree").strip(), "-m", message).strip()
    git("update-ref", "refs/heads/main", commit)
    index.unlink()
    return commit
