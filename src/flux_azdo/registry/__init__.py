"""Where Flux distributions come from when `--manifests` does not name a local file.

Flux publishes every release as the OCI artifact `ghcr.io/fluxcd/flux-manifests:<version>`.
This package pulls it anonymously over the OCI distribution API and caches it by
version and digest, behind the small `DistributionFetcher` interface.
"""
