"""gotk-components.yaml: the equivalent of `flux install --export`.

Flux renders its components by running kustomize over per-version templates. We start
from the rendered distribution instead (the same documents Flux publishes as its OCI
artifact) and re-apply each flag to it. Documents a flag does not touch are copied
verbatim, so the result is byte-identical to Flux's for the same version and flags.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from flux_azdo.errors import UserError
from flux_azdo.manifests.components import (
    DEFAULT_COMPONENTS,
    NOTIFICATION_CONTROLLER,
    SOURCE_WATCHER,
    select_components,
)
from flux_azdo.manifests.deployments import DeploymentEdits, edit_deployment
from flux_azdo.manifests.distribution import (
    COMPONENTS_PREFIX,
    GENERATED_WARNING,
    VERSION_PREFIX,
    Distribution,
)
from flux_azdo.manifests.documents import Document, join_documents
from flux_azdo.manifests.flags import DNS1123_SUBDOMAIN, reject_control_characters, validate_namespace
from flux_azdo.manifests.goyaml import scalar
from flux_azdo.manifests.versions import FluxVersion

DEFAULT_NAMESPACE = "flux-system"
DEFAULT_REGISTRY = "ghcr.io/fluxcd"
DEFAULT_CLUSTER_DOMAIN = "cluster.local"
LOG_LEVELS = ("debug", "info", "error")
# Up to this release the events address named the namespace literally; later ones let
# the controller fill it in from $(RUNTIME_NAMESPACE).
_LAST_LITERAL_EVENTS_NAMESPACE = FluxVersion.parse("v2.7.0")
# RBAC objects and the quota carry the namespace as a name suffix (kustomize nameSuffix).
_SUFFIXED_KINDS = ("ClusterRole", "ClusterRoleBinding", "ResourceQuota")


@dataclass(frozen=True)
class InstallOptions:
    """The `flux install` flags that shape gotk-components.yaml, with Flux's defaults."""

    version: str | None = None  # None or 'latest': whatever the distribution holds
    components: tuple[str, ...] = DEFAULT_COMPONENTS
    components_extra: tuple[str, ...] = ()
    namespace: str = DEFAULT_NAMESPACE
    registry: str = DEFAULT_REGISTRY
    image_pull_secret: str = ""
    registry_creds: str = field(default="", repr=False)  # user:password, never shown
    network_policy: bool = True
    watch_all_namespaces: bool = True
    log_level: str = "info"
    cluster_domain: str = DEFAULT_CLUSTER_DOMAIN
    toleration_keys: tuple[str, ...] = ()

    def selected_components(self) -> tuple[str, ...]:
        """Validate every flag (before anything is fetched or written) and return the components."""
        if self.version not in (None, "latest"):
            FluxVersion.parse(self.version)
        validate_namespace(self.namespace)
        for flag, value in (("--registry", self.registry), ("--registry-creds", self.registry_creds)):
            reject_control_characters(value, flag)
        for key in self.toleration_keys:
            reject_control_characters(key, "--toleration-keys")
        if self.log_level not in LOG_LEVELS:
            raise UserError(f"--log-level={self.log_level!r} is not supported: use one of {', '.join(LOG_LEVELS)}")
        if "://" in self.registry or self.registry != self.registry.strip() or " " in self.registry:
            raise UserError(
                f"--registry={self.registry!r} must be a registry host and path without a scheme, "
                "e.g. myregistry.azurecr.io/fluxcd"
            )
        if self.image_pull_secret and not DNS1123_SUBDOMAIN.match(self.image_pull_secret):
            raise UserError(
                f"--image-pull-secret={self.image_pull_secret!r} is not a valid Secret name: "
                "use lower-case letters, digits, '-' and '.'"
            )
        if self.registry_creds:
            if not self.image_pull_secret:
                raise UserError(
                    "--registry-creds requires --image-pull-secret: name the Secret that will hold the credentials"
                )
            if len(self.registry_creds.split(":")) != 2:
                raise UserError("--registry-creds has an invalid format: expected 'user:password'")
        if not self.cluster_domain or not DNS1123_SUBDOMAIN.match(self.cluster_domain):
            raise UserError(
                f"--cluster-domain={self.cluster_domain!r} is not a DNS domain: use the cluster's domain, "
                "e.g. cluster.local"
            )
        for key in self.toleration_keys:
            if not key or any(c.isspace() for c in key):
                raise UserError(f"--toleration-keys has an invalid key {key!r}: give taint keys such as node-role/flux")
        return select_components(self.components, self.components_extra)


def events_address(version: str, namespace: str, cluster_domain: str, components: tuple[str, ...]) -> str:
    """The `--events-addr` every controller gets: empty without notification-controller."""
    if NOTIFICATION_CONTROLLER not in components:
        return ""
    literal = FluxVersion.parse(version) <= _LAST_LITERAL_EVENTS_NAMESPACE
    ns = namespace if literal else "$(RUNTIME_NAMESPACE)"
    return f"http://notification-controller.{ns}.svc.{cluster_domain}./"


def _suffixed_names(dist: Distribution) -> set[str]:
    """Names that carry the namespace as a suffix (kustomize's nameSuffix on RBAC and the quota)."""
    suffix = f"-{dist.namespace}"
    return {d.name for d in dist.documents if d.kind in _SUFFIXED_KINDS and d.name.endswith(suffix)}


def _rename_namespace(doc: Document, old: str, new: str, suffixed: set[str]) -> str:
    text = doc.text
    old_q, new_q = re.escape(scalar(old)), scalar(new)
    text = re.sub(rf"^(\s*(?:namespace|app\.kubernetes\.io/instance): ){old_q}$", rf"\g<1>{new_q}", text, flags=re.M)
    if doc.kind == "Namespace":
        text = re.sub(rf"^(  name: ){old_q}$", rf"\g<1>{new_q}", text, flags=re.M)
    elif doc.kind in _SUFFIXED_KINDS:
        # Only the names kustomize suffixed (objects and the roleRefs to them), never e.g. cluster-admin.
        text = re.sub(
            r"^(\s*name: )(\S+)$",
            lambda m: m.group(1) + scalar(m.group(2)[: -len(old)] + new) if m.group(2) in suffixed else m.group(0),
            text,
            flags=re.M,
        )
    return text


def _select_documents(dist: Distribution, opts: InstallOptions, components: tuple[str, ...]) -> list[Document]:
    missing = [c for c in components if c not in dist.components]
    if missing:
        raise UserError(
            f"component {missing[0]!r} is not in the distribution {dist.origin} (Flux {dist.version} with "
            f"{', '.join(dist.components)}): use a distribution that has it, such as the flux-manifests OCI artifact"
        )
    shared = dist.shared_documents
    if opts.network_policy and not any(d.kind == "NetworkPolicy" for d in shared):
        raise UserError(
            f"the distribution {dist.origin} has no network policies (it was exported with "
            "--network-policy=false): pass --network-policy=false or use a distribution that has them"
        )
    selected = [d for d in shared if opts.network_policy or d.kind != "NetworkPolicy"]
    for component in components:
        selected.extend(dist.documents_of(component))
    return selected


def generate_components(dist: Distribution, opts: InstallOptions) -> str:
    """Render gotk-components.yaml for the given flags from a distribution."""
    components = opts.selected_components()
    if opts.version not in (None, "latest") and opts.version != dist.version:
        raise UserError(
            f"the distribution {dist.origin} is Flux {dist.version} but --version asks for {opts.version}: "
            "pass the matching --version or the matching --manifests"
        )
    documents = _select_documents(dist, opts, components)
    events = events_address(dist.version, opts.namespace, opts.cluster_domain, components)
    args = {
        "--events-addr": events,
        "--watch-all-namespaces": "true" if opts.watch_all_namespaces else "false",
        "--log-level": opts.log_level,
    }
    texts = []
    suffixed = _suffixed_names(dist)
    for doc in documents:
        renamed = dist.namespace != opts.namespace
        text = _rename_namespace(doc, dist.namespace, opts.namespace, suffixed) if renamed else doc.text
        if doc.kind == "Deployment" and doc.component is not None:
            storage = f"{doc.component}.$(RUNTIME_NAMESPACE).svc.{opts.cluster_domain}."
            edits = DeploymentEdits(
                args={**args, "--storage-adv-addr": storage},
                feature_gate=SOURCE_WATCHER in components,
                registry=opts.registry.rstrip("/"),
                image_pull_secret=opts.image_pull_secret,
                toleration_keys=opts.toleration_keys,
            )
            text = edit_deployment(text, doc.component, edits)
        texts.append(text)
    header = f"---\n{GENERATED_WARNING}\n{VERSION_PREFIX}{dist.version}\n{COMPONENTS_PREFIX}{','.join(components)}\n"
    return header + join_documents(texts)
