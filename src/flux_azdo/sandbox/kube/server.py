"""KubeApiServer: the fake Kubernetes API server on 127.0.0.1, over HTTPS (own CA) or HTTP, with bearer tokens.

It puts together the store, the registry of resource types (built-ins plus every established CRD), the verbs,
the routing in front of them and the background controllers, seeds what a fresh cluster has, keeps a log of
every request it answered, and writes kubeconfigs that kubectl and the kubernetes client accept.
"""

from __future__ import annotations

import base64
import os
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from flux_azdo.sandbox.kube.access import AccessRule, TokenAuthenticator, Users
from flux_azdo.sandbox.kube.builtin_resources import builtin_types
from flux_azdo.sandbox.kube.calls import CRD_KEY, NAMESPACE_KEY
from flux_azdo.sandbox.kube.controllers import LifecycleController
from flux_azdo.sandbox.kube.crds import is_established, resource_type
from flux_azdo.sandbox.kube.defaulting import ClusterIPAllocator
from flux_azdo.sandbox.kube.discovery import version_info
from flux_azdo.sandbox.kube.managed import now_text
from flux_azdo.sandbox.kube.requestlog import RequestLog, RequestRecord
from flux_azdo.sandbox.kube.resources import Registry, ResourceType
from flux_azdo.sandbox.kube.rest import Api
from flux_azdo.sandbox.kube.routing import App
from flux_azdo.sandbox.kube.store import Store
from flux_azdo.sandbox.kube.tls import ServingMaterial, generate_serving_material, server_context
from flux_azdo.sandbox.kube.transport import HttpServer
from flux_azdo.sandbox.kube.watch import DEFAULT_BOOKMARK_INTERVAL
from flux_azdo.sandbox.serving import Served, serve_in_thread, stop_serving

SEED_NAMESPACES = ("default", "kube-node-lease", "kube-public", "kube-system")
#: Seconds a deleted namespace keeps its content. `kubectl delete -f` of a six-controller gotk-components.yaml
#: (38 objects, the namespace first) sends its last delete 0.08 s after the namespace's on an idle 2-core machine
#: and up to 0.57 s after it with twelve busy processes on it; 2 s leaves room for worse, and a real cluster's
#: namespace controller takes seconds too.
NAMESPACE_TERMINATION_DELAY = 2.0


class KubeApiServer(Served):
    """A fake Kubernetes API server for tests and the demo; use it as a context manager.

    `url`, `admin_token` and `ca_data` (PEM of the CA, None over plain HTTP) identify it; `add_user` models a
    user with limited rights; `token_authenticator` (or `set_token_authenticator`) accepts outside tokens, such as
    Microsoft Entra tokens on AKS, whose users get their rights from `bind`; `write_kubeconfig` writes a
    kubeconfig (context "sandbox") for kubectl and the kubernetes client; `requests` lists every request answered
    so far (`reset_requests` clears it).

    Options: `history` is how many write events of each kind watches can replay (older resourceVersions get
    `410 Expired`, as after an etcd compaction); `version` is the release /version reports; a new CRD becomes
    Established (and its kind served) `crd_establish_delay` seconds after it is created, as the apiextensions
    controllers do a moment later in a real cluster (0: at once, but still after the write that created it);
    watches that allow bookmarks get one every `watch_bookmark_interval` seconds. A deleted namespace shows
    Terminating and refuses new content at once, but its content is only deleted `namespace_termination_delay`
    seconds later, as a real namespace controller gets to it seconds later: `kubectl delete -f` of a file holding
    the namespace and its content then finds every object and says "deleted" (0: the controller starts at once).
    """

    def __init__(
        self,
        *,
        tls: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
        history: int = 4096,
        version: str = "v1.32.4",
        crd_establish_delay: float = 0.05,
        watch_bookmark_interval: float = DEFAULT_BOOKMARK_INTERVAL,
        namespace_termination_delay: float = NAMESPACE_TERMINATION_DELAY,
        token_authenticator: TokenAuthenticator | None = None,
    ) -> None:
        self.tls = tls
        self.host = host
        self.port = port
        self.url = ""
        self.users = Users(insecure_is_admin=not tls, token_authenticator=token_authenticator)
        self.admin_token = self.users.admin_token
        self._material: ServingMaterial | None = generate_serving_material(host) if tls else None
        self.ca_data: bytes | None = self._material.ca_pem if self._material is not None else None
        self.store = Store(history)
        self.registry = Registry()
        for builtin in builtin_types(ClusterIPAllocator()):
            self.registry.add(builtin)
        self.version_info = version_info(version)
        self.watch_bookmark_interval = watch_bookmark_interval
        self._log = RequestLog()
        self.api = Api(self.store, self.registry, self._changed)
        self.controller = LifecycleController(
            self.api,
            self.registry,
            self.ca_data,
            crd_establish_delay=crd_establish_delay,
            namespace_termination_delay=namespace_termination_delay,
        )
        self._http: HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._seed()

    # ------------------------------------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        with self._lock:
            if self._http is not None:
                return
            self.store.reopen()
            context = server_context(self._material) if self._material is not None else None
            app = App(
                self.users,
                self.registry,
                self.api,
                lambda: f"{self.host}:{self.port}",
                version_info=self.version_info,
                log=self._log,
                bookmark_interval=self.watch_bookmark_interval,
            )
            self._http = HttpServer((self.host, self.port), app, context)
            self.port = self._http.server_address[1]
            scheme = "https" if context is not None else "http"
            self.url = f"{scheme}://{self.host}:{self.port}"
            self._thread = serve_in_thread(self._http, "kube-apiserver")
            self.controller.start()
            self.controller.poke()

    def stop(self) -> None:
        with self._lock:
            http, thread = self._http, self._thread
            self._http = self._thread = None
        if http is None:
            return
        stop_serving(http, thread, closed=self.store.close)  # a closed store ends the open watches
        self.controller.stop()

    # ------------------------------------------------------------------------------------------------ requests

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request answered since the start (or the last `reset_requests`), oldest first (a copy)."""
        return self._log.snapshot()

    def reset_requests(self) -> None:
        self._log.clear()

    # ----------------------------------------------------------------------------------------------- identities

    def add_user(self, name: str, rules: Sequence[AccessRule]) -> str:
        """A user limited to `rules`; returns its bearer token."""
        return self.users.add(name, rules)

    def set_token_authenticator(self, authenticator: TokenAuthenticator | None) -> None:
        """Accept tokens this server did not issue when `authenticator` names their user (AKS's webhook
        authentication of Microsoft Entra tokens); None: only the server's own tokens again."""
        self.users.token_authenticator = authenticator

    def bind(self, subject: str, rules: Sequence[AccessRule] = (), *, cluster_admin: bool = False) -> None:
        """Rules (or cluster-admin) for a user name or group the token authenticator may name; see `Users.bind`."""
        self.users.bind(subject, rules, cluster_admin=cluster_admin)

    def write_kubeconfig(self, path: Path, *, token: str | None = None, namespace: str | None = None) -> None:
        """A kubeconfig with cluster, user and context "sandbox" (0600: it holds a token)."""
        if not self.url:
            raise RuntimeError("start the server before writing a kubeconfig")
        cluster: dict[str, Any] = {"server": self.url}
        if self.ca_data is not None:
            cluster["certificate-authority-data"] = base64.b64encode(self.ca_data).decode()
        context: dict[str, Any] = {"cluster": "sandbox", "user": "sandbox"}
        if namespace:
            context["namespace"] = namespace
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "sandbox", "cluster": cluster}],
            "users": [{"name": "sandbox", "user": {"token": token or self.admin_token}}],
            "contexts": [{"name": "sandbox", "context": context}],
            "current-context": "sandbox",
            "preferences": {},
        }
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            yaml.safe_dump(config, stream, sort_keys=False)

    # ---------------------------------------------------------------------------------------------- internals

    def _changed(self, resource: ResourceType, obj: dict[str, Any] | None) -> None:
        if resource.key == CRD_KEY:
            self._sync_custom_types()
        self.controller.poke()

    def _sync_custom_types(self) -> None:
        with self.store.lock:
            served: dict[tuple[str, str], ResourceType] = {}
            for crd in self.store.objects(CRD_KEY):
                if is_established(crd):
                    custom = resource_type(crd)
                    served[custom.key] = custom
            for existing in self.registry:
                if existing.custom and existing.key not in served:
                    self.registry.remove(*existing.key)
            for custom in served.values():
                self.registry.add(custom)

    def _seed(self) -> None:
        """What a fresh cluster has: its four namespaces and the `kubernetes` service."""
        namespace_type = self.registry.get(*NAMESPACE_KEY)
        assert namespace_type is not None and namespace_type.defaulter is not None
        for name in SEED_NAMESPACES:
            obj: dict[str, Any] = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
            namespace_type.defaulter(obj, None)
            obj["metadata"] |= {"uid": str(uuid.uuid4()), "creationTimestamp": now_text()}
            self.store.put(NAMESPACE_KEY, obj, None)
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "kubernetes",
                "namespace": "default",
                "uid": str(uuid.uuid4()),
                "creationTimestamp": now_text(),
                "labels": {"component": "apiserver", "provider": "kubernetes"},
            },
            "spec": {
                "clusterIP": "10.96.0.1",
                "clusterIPs": ["10.96.0.1"],
                "internalTrafficPolicy": "Cluster",
                "ipFamilies": ["IPv4"],
                "ipFamilyPolicy": "SingleStack",
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
                "sessionAffinity": "None",
                "type": "ClusterIP",
            },
            "status": {"loadBalancer": {}},
        }
        self.store.put(("", "services"), service, None)
