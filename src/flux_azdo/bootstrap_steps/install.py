"""The cluster side of a bootstrap: install the components, store the source secret, apply the sync manifests.

As Flux does it: the components are installed by us only on the first install (no Kustomization, or one never
applied); afterwards kustomize-controller owns them and the sync apply (every run) is a no-op unless something
changed. What is applied is the kustomize build of `<path>/<namespace>/` when its kustomization.yaml holds more
than the two resources (user patches, the SSH or workload identity patch), so those take effect on the first
install too; otherwise the two files as they are.

One change from Flux: the first install leaves out the GitRepository and Kustomization. Applied before the source
secret exists, source-controller would fail its first fetch and set Ready=False, which the wait then reports as a
failure; they are applied with the sync manifests, after the secret.
"""

from __future__ import annotations

import datetime
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flux_azdo.manifests.kustomization import KUSTOMIZATION_FILE, SYNC_FILE

if TYPE_CHECKING:
    from flux_azdo.bootstrap import BootstrapOptions, Deadline, Reporter
    from flux_azdo.bootstrap_steps.repository import Planner
    from flux_azdo.cluster.apply import ObjectChange
    from flux_azdo.cluster.client import Cluster
    from flux_azdo.cluster.secrets import SourceSecretChange
    from flux_azdo.git.workspace import Workspace

SOURCE_API = "source.toolkit.fluxcd.io/v1"
KUSTOMIZE_GROUP = "kustomize.toolkit.fluxcd.io"
KUSTOMIZATION_CRD = f"kustomizations.{KUSTOMIZE_GROUP}"
REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"
#: The wait for CRDs to become Established, as Flux's (1 minute), within what is left of --timeout.
ESTABLISH_TIMEOUT = 60.0
KUSTOMIZE_TIMEOUT = 60.0


def must_install(options: BootstrapOptions, cluster: Cluster) -> bool:
    """Flux's `mustInstallManifests`: the Kustomization is missing, or has never applied a revision."""
    crd = cluster.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", KUSTOMIZATION_CRD)
    if crd is None:
        return True
    served = [v.get("name") for v in (crd.get("spec") or {}).get("versions") or () if v.get("served")]
    if not served:
        return True
    version = "v1" if "v1" in served else str(served[0])
    found = cluster.get(f"{KUSTOMIZE_GROUP}/{version}", "Kustomization", options.name, options.namespace)
    return found is None or not (found.get("status") or {}).get("lastAppliedRevision")


def _manifests(
    options: BootstrapOptions, planner: Planner, workspace: Workspace, deadline: Deadline, *, with_sync: bool
) -> str:
    """The YAML to apply: the kustomize build of the folder when kustomization.yaml needs it, else the files."""
    from flux_azdo.cluster.kustomize import build, find_kustomize, needs_kustomize
    from flux_azdo.git.paths import write_file
    from flux_azdo.manifests.distribution import COMPONENTS_FILE

    kustomization = workspace.read(planner.path(KUSTOMIZATION_FILE))
    plan = planner.plan()
    planned = planner.file(plan, KUSTOMIZATION_FILE)
    if planned.status in ("create", "update"):
        # Before the sync commit writes kustomization.yaml (new, or ours rewritten for another auth mode): our own
        # patches (workload identity, the SSH host key algorithms) must be in the controllers from the start, or the
        # unpatched source-controller reconciles the GitRepository first and fails (Flux has this fault). Built from
        # the planned files in a scratch copy of the folder: the checkout stays as the commits leave it.
        if not needs_kustomize(planned.content):
            kustomization = None  # the plain default: the files as they are
        else:
            with tempfile.TemporaryDirectory(prefix="flux-azdo-kustomize-") as scratch:
                folder = workspace.root / planner.directory
                if folder.is_dir():
                    shutil.copytree(folder, scratch, symlinks=True, dirs_exist_ok=True)
                for name in (COMPONENTS_FILE, SYNC_FILE, KUSTOMIZATION_FILE):
                    (Path(scratch) / name).write_text(planner.file(plan, name).content, encoding="utf-8")
                argv = find_kustomize(options.kustomize)
                return build(argv, Path(scratch), timeout=deadline.remaining(KUSTOMIZE_TIMEOUT))
    if kustomization is not None and needs_kustomize(kustomization):
        if workspace.read(planner.path(SYNC_FILE)) is None:
            # A user's kustomization.yaml listing gotk-sync.yaml before the sync commit: the build needs the file.
            write_file(workspace.root, planner.path(SYNC_FILE), planner.file(plan, SYNC_FILE).content)
        argv = find_kustomize(options.kustomize)
        return build(argv, workspace.root / planner.directory, timeout=deadline.remaining(KUSTOMIZE_TIMEOUT))
    texts = [workspace.read(planner.path(COMPONENTS_FILE)) or ""]
    if with_sync:
        texts.append(workspace.read(planner.path(SYNC_FILE)) or "")
    return "\n---\n".join(texts)


def _is_sync_object(options: BootstrapOptions, obj: Mapping[str, Any]) -> bool:
    metadata = obj.get("metadata") or {}
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    return (
        (group, obj.get("kind")) in (("source.toolkit.fluxcd.io", "GitRepository"), (KUSTOMIZE_GROUP, "Kustomization"))
        and metadata.get("name") == options.name
        and metadata.get("namespace") == options.namespace
    )


def install_components(
    options: BootstrapOptions,
    cluster: Cluster,
    planner: Planner,
    workspace: Workspace,
    reporter: Reporter,
    deadline: Deadline,
) -> bool:
    """Install the components when Flux would (first install); reconcile the image pull secret. Installed or not."""
    from flux_azdo.cluster.apply import apply_objects, parse_objects

    installed = must_install(options, cluster)
    if installed:
        reporter.action(f'installing components in "{options.namespace}" namespace')
        objects = parse_objects(_manifests(options, planner, workspace, deadline, with_sync=False))
        objects = [obj for obj in objects if not _is_sync_object(options, obj)]
        apply_objects(cluster, objects, field_manager="flux", establish_timeout=deadline.remaining(ESTABLISH_TIMEOUT))
        reporter.success("installed components")
    install = options.install
    if install.image_pull_secret and install.registry_creds:
        from flux_azdo.cluster.secrets import apply_image_pull_secret

        username, _, password = install.registry_creds.partition(":")
        registry = install.registry.split("/", 1)[0]
        apply_image_pull_secret(cluster, options.namespace, install.image_pull_secret, registry, username, password)
        reporter.success(f"reconciled image pull secret {install.image_pull_secret}")
    reporter.success("reconciled components")
    return installed


def reconcile_source_secret(
    options: BootstrapOptions, cluster: Cluster, reporter: Reporter
) -> SourceSecretChange | None:
    """Create or update the Secret source-controller reads, without the old credential's keys; none with
    --provider azure."""
    from flux_azdo.cluster.secrets import apply_source_secret, removed_keys_note

    secret = options.cluster_secret
    if secret is None:
        reporter.success("no source secret: source-controller signs in with workload identity (--provider azure)")
        warn_of_a_stored_credential(options, cluster, reporter)
        return None
    where = f"{secret.namespace}/{secret.name}"
    reporter.action(f'determining if source secret "{where}" exists')
    reporter.action("generating source secret")
    public_key = secret.string_data.get("identity.pub")
    if public_key:
        reporter.success(f"public key: {public_key.strip()}")
    reporter.action(f'applying source secret "{where}"')
    change = apply_source_secret(cluster, secret)
    reporter.success(f"reconciled source secret{removed_keys_note(change.removed_keys)}")
    return change


#: The keys of a source Secret that hold a credential, the first found named: with an SSH key, `password` is the
#: key's passphrase, not a token.
HELD_CREDENTIALS = (("identity", "an SSH private key"), ("password", "a token"), ("bearerToken", "a bearer token"))


def warn_of_a_stored_credential(options: BootstrapOptions, cluster: Cluster, reporter: Reporter) -> None:
    """After a switch to workload identity: the Secret source-controller read before still holds a credential.

    Nothing reads it any more, but a PAT or key stored in the cluster is still a PAT or key anybody who may read
    Secrets there can use. We never delete it (Flux does not either, and until Flux has fetched with the identity
    it is the way back); we say it is there and how to remove it. Values are never read into the message, and a
    Secret we may not read is no reason to stop a bootstrap that does not need it.
    """
    from flux_azdo.cluster.secrets import read_source_secret
    from flux_azdo.errors import UserError

    namespace, name = options.namespace, options.sync.secret_name
    try:
        stored = read_source_secret(cluster, namespace, name)
    except UserError:
        return
    held = next((what for key, what in HELD_CREDENTIALS if stored and stored.get(key)), None)
    if held is None:
        return
    reporter.warning(
        f'Secret "{namespace}/{name}" still holds {held} from the previous bootstrap: source-controller '
        "no longer uses it (--provider azure), but anyone who may read Secrets in the cluster can. Once the "
        f"GitRepository is Ready with workload identity, delete it (kubectl -n {namespace} delete secret {name}) and "
        "revoke the credential in Azure DevOps"
    )


def apply_sync(
    options: BootstrapOptions,
    cluster: Cluster,
    planner: Planner,
    workspace: Workspace,
    reporter: Reporter,
    deadline: Deadline,
) -> list[ObjectChange]:
    """Apply components + GitRepository + Kustomization (+ patches), every run: unchanged objects are not written."""
    from flux_azdo.cluster.apply import apply_objects, parse_objects

    reporter.action("applying sync manifests")
    objects = parse_objects(_manifests(options, planner, workspace, deadline, with_sync=True))
    if releasing_secret_ref(options, cluster, objects) is not None:
        release_secret_ref(options, cluster)
    changes = apply_objects(
        cluster, objects, field_manager="flux", establish_timeout=deadline.remaining(ESTABLISH_TIMEOUT)
    )
    reporter.success("reconciled sync configuration")
    _wait_for_source_controller_rollout(options, cluster, changes, reporter, deadline)
    return changes


def _wait_for_source_controller_rollout(
    options: BootstrapOptions,
    cluster: Cluster,
    changes: Sequence[ObjectChange],
    reporter: Reporter,
    deadline: Deadline,
) -> None:
    """After source-controller's Deployment changed (a switch of auth mode patches its pods): its new pods first.

    Until they run, the old pods reconcile the changed GitRepository without what it now needs (workload identity's
    environment, the SSH host key algorithms) and set Ready=False, which would end the health wait at once. The
    reconcile request made after this (`request_reconcile`) then has the new pods fetch, and the wait ignores the
    old pods' verdict, which is older than the request.
    """
    from flux_azdo.cluster.waits import wait_for_deployments

    if not any(
        change.kind == "Deployment"
        and change.name == "source-controller"
        and change.namespace == options.namespace
        and change.action == "configured"
        for change in changes
    ):
        return
    reporter.waiting("waiting for source-controller to roll out its changed pods")
    wait_for_deployments(cluster, options.namespace, ["source-controller"], deadline.at)
    reporter.success("source-controller rolled out")


def releasing_secret_ref(
    options: BootstrapOptions, cluster: Cluster, objects: Sequence[Mapping[str, Any]]
) -> Mapping[str, Any] | None:
    """The GitRepository of `objects` when its apply drops `spec.secretRef` from the live one (a switch to workload
    identity); else None.

    Server-side apply removes a field its manager no longer sends, but from a custom resource it leaves the emptied
    parent behind (kubernetes/kubernetes#99037): `secretRef: {}`, which the GitRepository's schema refuses (`name`
    is required), so the apply would fail with a 422. `release_secret_ref` removes it first; `plan` asks this too.
    """
    wanted = next(
        (obj for obj in objects if _is_sync_object(options, obj) and obj.get("kind") == "GitRepository"), None
    )
    if wanted is None or "secretRef" in (wanted.get("spec") or {}):
        return None
    live = cluster.get(SOURCE_API, "GitRepository", options.name, options.namespace)
    return wanted if live is not None and "secretRef" in (live.get("spec") or {}) else None


def release_secret_ref(options: BootstrapOptions, cluster: Cluster, *, dry_run: bool = False) -> None:
    """Remove the live GitRepository's `spec.secretRef` with a JSON merge patch (null), before the apply.

    The patch removes the whole `secretRef`, and with it every manager's claim on it; the apply then finds nothing
    to remove. Only that: a field the patch set would belong to its Update entry, which no later apply could take
    away (the provider, when switching back). `dry_run`: the server checks the patch and stores nothing (`plan`).
    """
    resource = cluster.resource(SOURCE_API, "GitRepository")
    verb = "dry-run the removal of" if dry_run else "remove"
    with cluster.errors(f"{verb} the secretRef of GitRepository {options.namespace}/{options.name}"):
        cluster.dynamic.patch(
            resource,
            body={"spec": {"secretRef": None}},
            name=options.name,
            namespace=options.namespace,
            content_type="application/merge-patch+json",
            field_manager="flux",
            dry_run="All" if dry_run else None,
            _request_timeout=options.cluster.timeout,
        )


def request_reconcile(
    options: BootstrapOptions, cluster: Cluster, applied: Sequence[ObjectChange], changed: bool
) -> str | None:
    """After a push (or a new secret) to an existing GitRepository: ask source-controller to fetch now.

    Its spec did not change, so it would fetch only at its next `interval`, and the wait would sit that out (Flux's
    does). `flux reconcile source git` does the same: the `reconcile.fluxcd.io/requestedAt` annotation. Nothing
    changed, nothing written: a no-op run stays without write requests. Returns the annotation's value (the wait
    then ignores a Ready=False older than the request), or None when no request was needed.
    """
    if not changed:
        return None
    created = any(
        change.kind == "GitRepository"
        and change.name == options.name
        and change.namespace == options.namespace
        and change.action == "created"
        for change in applied
    )
    if created:
        return None  # a new GitRepository is fetched at once
    now = datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")
    body = {"metadata": {"annotations": {REQUESTED_AT: now}}}
    resource = cluster.resource(SOURCE_API, "GitRepository")
    with cluster.errors(f"request a reconcile of GitRepository {options.namespace}/{options.name}"):
        cluster.dynamic.patch(
            resource,
            body=body,
            name=options.name,
            namespace=options.namespace,
            content_type="application/merge-patch+json",
            _request_timeout=options.cluster.timeout,
        )
    return now
