"""The sandbox's SSH endpoint: OpenSSH's sshd behaving like ssh.dev.azure.com, permissions shared with HTTP."""

from __future__ import annotations

from flux_azdo.sandbox.ssh.sshd import SshServer, SshServerError, generate_host_key, sshd_available

__all__ = ["SshServer", "SshServerError", "generate_host_key", "sshd_available"]
