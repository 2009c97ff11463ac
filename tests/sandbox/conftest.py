"""Keys shared by the sandbox tests: RSA generation is the slowest part of a start, so it happens once."""

from __future__ import annotations

from pathlib import Path

import pytest

from flux_azdo.sandbox.keys import write_rsa_key


@pytest.fixture(scope="session")
def ssh_host_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("host-key") / "ssh_host_rsa_key"
    write_rsa_key(path, comment="sandbox-host")
    return path


@pytest.fixture(scope="session")
def user_ssh_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("user-key") / "id_rsa"
    write_rsa_key(path)
    return path
