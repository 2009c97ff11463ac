"""What the generators must know about Azure DevOps.

Azure Repos answers SSH with one RSA host key on both of its SSH hosts, accepts only
RSA user keys signed with SHA-2, and is the only host Flux's `provider: azure` serves.
The host key is pinned here (it matches the fingerprint Microsoft publishes,
SHA256:ohD8VZEXGWo6Ez8GSEJQ9WpafgLFsOfLOtGGQCQo6Og) so nothing ever trusts a scan.
"""

from __future__ import annotations

AZURE_DEVOPS_SSH_HOSTS = ("ssh.dev.azure.com", "vs-ssh.visualstudio.com")
AZURE_DEVOPS_HTTPS_HOST = "dev.azure.com"
AZURE_DEVOPS_HOST_KEY = (
    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7Hr1oTWqNqOlzGJOfGJ4NakVyIzf1rXYd4d7wo6jBlkLvCA4odBlL0mDUyZ0/QUfTTqeu"
    "+tm22gOsv+VrVTMk6vwRU75gY/y9ut5Mb3bR5BV58dKXyq9A9UeB5Cakehn5Zgm6x1mKoVyf+FFn26iYqXJRgzIZZcZ5V6hrE0Qg39kZm4az"
    "48o0AUbf6Sp4SLdvnuMa2sVNwHBboS7EJkm57XQPVU3/QpyNLHbWDdzwtrlS+ez30S3AdYhLKEOxAG8weOnyrtLJAUen9mTkol8oII1edf7m"
    "WWbWVf0nBmly21+nZcmCTISQBtdcyPaEno7fFQMDD26/s0lfKob4Kw8H"
)
# The algorithms Azure DevOps offers for its host key and accepts for user keys.
AZURE_DEVOPS_SSH_HOSTKEY_ALGOS = "rsa-sha2-512,rsa-sha2-256"


def is_azure_devops_ssh_host(host: str) -> bool:
    return host.lower() in AZURE_DEVOPS_SSH_HOSTS
