"""A test process as clean as a CI job's: nothing of the machine running the tests leaks into a product test.

Every module that runs the CLI or the bootstrap against the sandbox starts from this (an autouse fixture calls
`isolate_environment`): a credential or kubeconfig in the developer's environment would otherwise be picked up
by the credential lookup, `~/.gitconfig` could rewrite URLs, git could prompt, and a terminal stdin would make
the CLI ask for a password.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

#: What the credential lookup and the cluster access read from the environment.
CREDENTIAL_VARIABLES = ("GIT_PASSWORD", "AZURE_DEVOPS_EXT_PAT", "SYSTEM_ACCESSTOKEN", "KUBECONFIG")


class NotATerminal(io.StringIO):
    """A stdin that is not a terminal (a CI job's), holding `text` for what the CLI reads from it."""

    def isatty(self) -> bool:
        return False


def isolate_environment(
    monkeypatch: pytest.MonkeyPatch, home: Path, *, unset: Iterable[str] = CREDENTIAL_VARIABLES
) -> None:
    """No credential or kubeconfig from the machine (`unset`), `home` (created) as HOME for git and kubectl, git
    without the system config and without prompts, and an empty stdin that is not a terminal."""
    for name in unset:
        monkeypatch.delenv(name, raising=False)
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_TERMINAL_PROMPT", "0")
    monkeypatch.setattr(sys, "stdin", NotATerminal(""))
