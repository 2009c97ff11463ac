"""Where `--manifests` and `--version` say the Flux distribution comes from.

A local path (file, folder or .tar.gz) is read as is, for air-gapped machines; an
`oci://` reference, or nothing at all, means the registry (ghcr.io by default).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from flux_azdo.errors import UserError
from flux_azdo.manifests.distribution import Distribution, load_distribution, read_distribution_bytes
from flux_azdo.registry.oci import (
    DEFAULT_MANIFESTS_REPOSITORY,
    DistributionFetcher,
    OciDistributionFetcher,
    OciRepository,
)

# The Flux release this version of flux-azdo is tested with, used when --version is not given.
DEFAULT_FLUX_VERSION = "v2.9.4"


def resolve_distribution(
    manifests: str | None,
    version: str | None,
    progress: Callable[[str], None] = lambda _: None,
    fetcher: DistributionFetcher | None = None,
) -> Distribution:
    """Load the distribution named by `--manifests` (default: the Flux OCI artifact) at `--version`."""
    if manifests is not None and not manifests.strip():
        raise UserError("--manifests is empty: give a file, a folder, a .tar.gz or an oci:// repository")
    if manifests and not manifests.lower().startswith("oci://"):
        return load_distribution(Path(manifests))
    if fetcher is None:
        fetcher = OciDistributionFetcher(OciRepository.parse(manifests or DEFAULT_MANIFESTS_REPOSITORY))
    wanted = version or DEFAULT_FLUX_VERSION
    layer = fetcher.fetch(wanted)
    how = "cached" if layer.from_cache else "downloaded"
    progress(f"Flux {layer.version} from {layer.origin.rsplit(':', 1)[0]} ({how}, {layer.digest[:19]})")
    dist = read_distribution_bytes(layer.data, layer.origin)
    if dist.version != layer.version:
        raise UserError(f"{layer.origin} holds Flux {dist.version}, not {layer.version}: the artifact is mislabelled")
    return dist
