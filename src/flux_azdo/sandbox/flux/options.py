"""What a `FluxSimulator` does besides the defaults every Flux installation has."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass


def no_workload_identity(client_id: str) -> str | None:
    """The default token issuer: no client id is federated, so `provider: azure` fails as on an unfederated AKS."""
    return None


@dataclass(frozen=True)
class SimulatorOptions:
    """Knobs of the simulated controllers. Every default models a stock Flux install on AKS."""

    #: Seconds before a Pod of a Flux Deployment is Running/Ready (and the Deployment Available).
    deployment_ready_after: float = 0.2
    #: Image references, or prefixes of them, that never pull: the Pod stays in ImagePullBackOff.
    unpullable_images: Collection[str] = ()
    #: Entra ID token exchange for workload identity: client id -> bearer token for Azure DevOps, None if the
    #: client id has no federated credential (the sandbox passes `World.workload_token`).
    workload_token: Callable[[str], str | None] = no_workload_identity
    #: Play the deployment controller, the scheduler and the kubelet for Flux Deployments. Turn it off against a
    #: real cluster, whose own controllers run the Pods; the Flux controllers then wait for those Deployments.
    simulate_deployments: bool = True
    #: Let source-controller and kustomize-controller act only while their Deployment is Available, as the real
    #: processes do. False makes them act regardless (with the Deployment's arguments when there is one): for a
    #: real cluster whose Flux images cannot run, together with `simulate_deployments=False`.
    controllers_wait_for_deployments: bool = True
    #: Upper bound, in seconds, for every periodic wait (spec.interval, retryInterval, the 30 s dependency
    #: requeue, failure back-off). None honours the objects' own intervals exactly, as Flux does; tests set a
    #: few seconds so that a push is picked up without `reconcile.fluxcd.io/requestedAt`.
    max_interval: float | None = None
    #: Lower bound, in seconds, for periodic reconciles, so `interval: 1ms` cannot spin the simulator.
    min_interval: float = 0.5
    #: How go-git picks SSH host key algorithms when `--ssh-hostkey-algos` is absent and known_hosts holds an
    #: `ssh-rsa` key. True: only `ssh-rsa` (SHA-1), as fluxcd/pkg git/gogit before v0.35.1 (source-controller
    #: before v1.6.2) did -- which is why Azure DevOps needs the `--ssh-hostkey-algos` patch. False: also offer
    #: rsa-sha2-512/256 first, as later source-controller releases do.
    sha1_only_rsa_host_keys: bool = True
    #: Play the azure-workload-identity mutating webhook: a Pod created from a template labelled
    #: `azure.workload.identity/use: "true"` whose ServiceAccount has `azure.workload.identity/client-id` gets the
    #: AZURE_* variables, and source-controller uses what its running Pod got. False: read the ServiceAccount
    #: annotation at every reconcile (no label needed, no restart after annotating).
    workload_identity_webhook: bool = True
    #: Node name written into the simulated Pods and kubelet Events.
    node_name: str = "sandbox-node"
