"""The Flux controllers' part of a cluster, simulated: Deployments that become Available (or never pull),
source-controller fetching GitRepositories with the credentials the cluster holds, and kustomize-controller
checking that a Kustomization's path exists at the fetched revision. See `simulator.py`.
"""

from __future__ import annotations

from flux_azdo.sandbox.flux.options import SimulatorOptions
from flux_azdo.sandbox.flux.simulator import FluxSimulator

__all__ = ["FluxSimulator", "SimulatorOptions"]
