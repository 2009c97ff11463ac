"""FluxSimulator: the controllers' half of a Flux installation, as threads talking to a Kubernetes API.

It runs one watch thread per kind (Deployments, Pods, GitRepositories, Kustomizations) and one worker per
controller (deployments, source-controller, kustomize-controller), so a slow `git fetch` never delays a
Deployment becoming Available. It needs nothing but a kubeconfig: against the sandbox's API server it also
plays the deployment controller and kubelet; against a real cluster pass `simulate_deployments=False` (and
`controllers_wait_for_deployments=False` when the Flux images there cannot run, e.g. the sample distribution's).

`stop()` is idempotent and returns within about a second: it shuts the open watch streams, kills running `git`
processes, joins every thread, closes the API client and removes what it wrote under `work_dir`.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
from pathlib import Path
from types import TracebackType

from flux_azdo.sandbox.flux.cluster import Cluster, resource_path
from flux_azdo.sandbox.flux.components import Components
from flux_azdo.sandbox.flux.deployments import DeploymentSimulator
from flux_azdo.sandbox.flux.events import EventRecorder
from flux_azdo.sandbox.flux.gitfetch import GitFetcher
from flux_azdo.sandbox.flux.gitrepository import GitRepositoryController
from flux_azdo.sandbox.flux.informer import Informer
from flux_azdo.sandbox.flux.kustomization import KustomizationController
from flux_azdo.sandbox.flux.options import SimulatorOptions
from flux_azdo.sandbox.flux.reconciling import ControllerContext
from flux_azdo.sandbox.flux.storage import ArtifactStorage
from flux_azdo.sandbox.flux.workqueue import WorkQueue

#: Upper bound for joining all threads together. They normally end within milliseconds (streams are shut, git
#: is killed, queues are woken); the bound only matters when a request to a hung API server is in flight.
JOIN_TIMEOUT = 2.0


class FluxSimulator:
    """Start with `start()` or `with FluxSimulator(...) as flux:`; see the module docstring."""

    def __init__(self, kubeconfig: Path, options: SimulatorOptions, work_dir: Path) -> None:
        self.kubeconfig = Path(kubeconfig)
        self.options = options
        #: Clones, artifacts and unpacked revisions live here (created if missing, emptied by stop()).
        self.work_dir = Path(work_dir)
        self._lock = threading.Lock()
        self._started = False
        self._stopped = False
        self._created_work_dir = False
        self._owned_dirs: list[Path] = []
        self._informers: list[Informer] = []
        self._queues: list[WorkQueue] = []
        self._cluster: Cluster | None = None
        self._fetcher: GitFetcher | None = None

    # -- lifecycle --------------------------------------------------------------------------------------------

    def start(self) -> FluxSimulator:
        with self._lock:
            if self._started:
                return self
            if self._stopped:
                raise RuntimeError("a stopped FluxSimulator cannot start again; create a new one")
            self._started = True
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        if not self.work_dir.exists():
            self._created_work_dir = True
        self.work_dir.mkdir(parents=True, exist_ok=True)
        storage_dir = self.work_dir / "storage"
        git_dir = self.work_dir / "git"
        build_dir = self.work_dir / "build"
        for directory in (storage_dir, git_dir, build_dir):
            directory.mkdir(parents=True, exist_ok=True)
            self._owned_dirs.append(directory)

        cluster = Cluster(self.kubeconfig)
        self._cluster = cluster
        events = EventRecorder(cluster)
        components = Components(cluster, require_available=self.options.controllers_wait_for_deployments)
        storage = ArtifactStorage(storage_dir)
        fetcher = GitFetcher(git_dir)
        self._fetcher = fetcher

        deployments = DeploymentSimulator(cluster, events, self.options)
        context = ControllerContext(cluster, events, components, storage, self.options)
        sources = GitRepositoryController(context, fetcher)
        kustomizations = KustomizationController(context, build_dir)
        simulate = self.options.simulate_deployments

        def on_deployment(kind: str, obj: dict[str, object]) -> None:
            if simulate:
                deployments.on_deployment(kind, obj)
            components.on_deployment_event()

        def on_source(kind: str, obj: dict[str, object]) -> None:
            sources.on_event(kind, obj)
            kustomizations.on_source_event(kind, obj)

        deployment_informer = Informer(cluster, "deployments", [resource_path("apps/v1", "deployments")], on_deployment)
        components.attach(deployment_informer)
        self._informers.append(deployment_informer)
        if simulate:
            self._informers.append(Informer(cluster, "pods", [resource_path("v1", "pods")], deployments.on_pod))
            self._queues.append(deployments.queue)
        source_informer = Informer(cluster, "gitrepositories", sources.list_paths(), on_source)
        sources.informer = source_informer
        kustomization_informer = Informer(
            cluster, "kustomizations", kustomizations.list_paths(), kustomizations.on_event
        )
        kustomizations.informer = kustomization_informer
        self._informers += [source_informer, kustomization_informer]
        self._queues += [sources.queue, kustomizations.queue]

        for queue in self._queues:
            queue.start()
        for informer in self._informers:
            informer.start()

    def stop(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        for informer in self._informers:
            informer.request_stop()
        for queue in self._queues:
            queue.request_stop()
        if self._fetcher is not None:
            self._fetcher.cancel_all()
        deadline = time.monotonic() + JOIN_TIMEOUT
        for informer in self._informers:
            informer.join(max(deadline - time.monotonic(), 0.0))
        for queue in self._queues:
            queue.join(max(deadline - time.monotonic(), 0.0))
        if self._cluster is not None:
            self._cluster.close()
        for directory in self._owned_dirs:
            shutil.rmtree(directory, ignore_errors=True)
        if self._created_work_dir:
            with contextlib.suppress(OSError):
                self.work_dir.rmdir()

    def wait_synced(self, timeout: float = 5.0) -> bool:
        """True once every watch has listed its kind at least once (kinds not served yet never sync)."""
        return all(informer.synced.wait(timeout) for informer in self._informers)

    def __enter__(self) -> FluxSimulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
