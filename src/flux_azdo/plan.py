"""`flux-azdo plan`: what `flux-azdo bootstrap` would change, found without changing anything.

A bootstrap changes two places: the repository (two commits to `<path>/<namespace>/`) and the cluster (the
components, the source secret, the sync objects). `plan` answers for both, with the same flags and the same
preflight, and writes nowhere:

- the repository is cloned into a private temporary folder (a fetch, never a push), the three files are planned
  from it exactly as bootstrap plans them, and each is shown as a unified diff against what the branch holds;
- the objects bootstrap would apply are built from the planned files (with kustomize when kustomization.yaml
  needs it, in that temporary clone) and sent as server-side apply *dry runs* (`dryRun=All`), compared with the
  live objects: create, update or unchanged per object, as the API server itself would apply them;
- the Secrets are read and compared key by key as bootstrap's update would write them (the old credential's
  keys removed, by name); their values are never shown, in any output.

Why a dry run and not a local comparison: defaulting, admission and field ownership are the server's, and a
local diff of YAML against live objects reports changes that an apply would not make (and misses some it would).
Objects whose namespace or type does not exist yet cannot be dry-run; they are "create" without a request.

The exit code follows `terraform plan -detailed-exitcode`: 0 nothing would change, 2 something would, 1 error.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import posixpath
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from flux_azdo.errors import UserError

if TYPE_CHECKING:
    from flux_azdo.azdo.preflight import Facts
    from flux_azdo.bootstrap import BootstrapOptions, Deadline, Reporter
    from flux_azdo.cluster.apply import ObjectChange
    from flux_azdo.cluster.client import Cluster
    from flux_azdo.manifests.distribution import Distribution
    from flux_azdo.manifests.repository import BootstrapFiles, FileStatus
    from flux_azdo.manifests.sourcesecret import SourceSecret

PlanAction = Literal["create", "update", "unchanged"]
RepositoryState = Literal["existing", "empty", "new-branch", "new-repository"]
SecretPurpose = Literal["source", "image-pull"]

#: Lines of each file's diff the text output shows by default; a new gotk-components.yaml is thousands of lines.
DEFAULT_DIFF_LINES = 200
#: Exit codes, as `terraform plan -detailed-exitcode`.
EXIT_NO_CHANGES = 0
EXIT_CHANGES = 2

_OBJECT_ACTIONS: dict[str, PlanAction] = {"created": "create", "configured": "update", "unchanged": "unchanged"}
_NO_NEWLINE = "\\ No newline at end of file\n"


@dataclass(frozen=True)
class FilePlan:
    """One of the three files: what bootstrap would do to it, and the unified diff (empty when nothing)."""

    path: str
    #: create, update or unchanged (a kustomization.yaml the user changed is never rewritten: unchanged; one still
    #: exactly as we generated it is rewritten for the run's auth mode: update).
    status: PlanAction
    diff: str
    added: int
    removed: int

    @property
    def changed(self) -> bool:
        return self.status != "unchanged"


@dataclass(frozen=True)
class ObjectPlan:
    """One object bootstrap would apply, and what the server-side dry run says the apply would do to it."""

    api_version: str
    kind: str
    namespace: str | None
    name: str
    action: PlanAction

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}" if self.namespace else f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class SecretPlan:
    """A Secret bootstrap writes through the API (never through Git); its values are never part of a plan."""

    namespace: str
    name: str
    purpose: SecretPurpose
    action: PlanAction
    #: The old credential's keys the update would remove (names only; the source secret alone).
    removed_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class PlanResult:
    """What a bootstrap with the same flags would change; `--output json` prints `to_json()`."""

    url: str
    branch: str
    version: str
    #: The API server asked (the kubeconfig's server of the context used).
    cluster: str
    repository: RepositoryState
    files: tuple[FilePlan, ...]
    objects: tuple[ObjectPlan, ...]
    secrets: tuple[SecretPlan, ...]
    #: Bootstrap would install the components itself (no Kustomization yet, or one never applied).
    install: bool

    @property
    def changed(self) -> bool:
        return (
            self.repository == "new-repository"
            or any(f.changed for f in self.files)
            or any(o.action != "unchanged" for o in self.objects)
            or any(s.action != "unchanged" for s in self.secrets)
        )

    @property
    def exit_code(self) -> int:
        return EXIT_CHANGES if self.changed else EXIT_NO_CHANGES

    def secret(self, purpose: SecretPurpose) -> SecretPlan | None:
        return next((s for s in self.secrets if s.purpose == purpose), None)

    def to_json(self) -> dict[str, Any]:
        def secret(purpose: SecretPurpose) -> dict[str, Any] | None:
            found = self.secret(purpose)
            if found is None:
                return None
            planned = {"namespace": found.namespace, "name": found.name, "action": found.action}
            return planned | ({"removedKeys": list(found.removed_keys)} if purpose == "source" else {})

        return {
            "url": self.url,
            "branch": self.branch,
            "version": self.version,
            "cluster": self.cluster,
            "changed": self.changed,
            "repository": self.repository,
            "files": [
                {"path": f.path, "status": f.status, "added": f.added, "removed": f.removed, "diff": f.diff}
                for f in self.files
            ],
            "install": self.install,
            "objects": [
                {
                    "apiVersion": o.api_version,
                    "kind": o.kind,
                    "namespace": o.namespace,
                    "name": o.name,
                    "action": o.action,
                }
                for o in self.objects
            ],
            "secret": secret("source"),
            "imagePullSecret": secret("image-pull"),
            "summary": self.summary(),
        }

    def summary(self) -> dict[str, dict[str, int]]:
        """Counts per action, for the last line of the text and for scripts."""
        files = {status: sum(f.status == status for f in self.files) for status in ("create", "update", "unchanged")}
        objects = {
            action: sum(o.action == action for o in self.objects) for action in ("create", "update", "unchanged")
        }
        return {"files": files, "objects": objects}


# ---------------------------------------------------------------------------------------------- orchestration


def plan(options: BootstrapOptions, reporter: Reporter) -> PlanResult:
    """Bootstrap's steps up to the first write, each turned into a question; raises UserError as bootstrap would."""
    from flux_azdo.bootstrap import BootstrapFailed, Deadline
    from flux_azdo.bootstrap_steps import checks, install, repository
    from flux_azdo.cluster.apply import parse_objects
    from flux_azdo.cluster.client import Cluster
    from flux_azdo.git.paths import write_file

    deadline = Deadline(options.timeout)
    options.install.selected_components()
    repository.validate(options)
    distribution = repository.load_distribution(options, reporter)
    with Cluster(options.cluster) as cluster:
        try:
            facts = checks.preflight(options, cluster, distribution.version, reporter)
        except BootstrapFailed as failed:
            raise UserError("a bootstrap would stop at its preflight: see the problems above", fix=failed.fix) from None
        with _checkout(options, facts, reporter, deadline) as (root, state):
            planned, existing = _plan_files(options, distribution, root)
            _stop_on_findings(planned, reporter)
            files = tuple(
                _file_plan(f.path, existing.get(posixpath.basename(f.path)), f.content, f.status) for f in planned.files
            )
            for planned_file in planned.files:
                if planned_file.status in ("create", "update"):
                    write_file(root, planned_file.path, planned_file.content)  # the private clone, never pushed
            text = _manifests(options, planned, root, deadline)
        reporter.action("asking the API server what an apply would change (server-side dry run)")
        changes = _dry_run_apply(options, cluster, parse_objects(text))
        secrets = _plan_secrets(options, cluster)
        installing = install.must_install(options, cluster)
        server = cluster.server
    result = PlanResult(
        url=options.url.original,
        branch=options.branch,
        version=distribution.version,
        cluster=server,
        repository=state,
        files=files,
        objects=tuple(_object_plan(change) for change in changes),
        secrets=tuple(secrets),
        install=installing,
    )
    reporter.success("planned what bootstrap would change" if result.changed else "planned: nothing would change")
    return result


@contextlib.contextmanager
def _checkout(
    options: BootstrapOptions, facts: Facts | None, reporter: Reporter, deadline: Deadline
) -> Iterator[tuple[Path, RepositoryState]]:
    """The branch as it is now, in a private folder; an empty folder when --create-repo would create the repository."""
    from flux_azdo.bootstrap_steps import repository

    if options.create_repository and facts is not None and facts.found_repository is None:
        reporter.success(f'repository "{options.url.repository}" would be created (--create-repo)')
        with tempfile.TemporaryDirectory(prefix="flux-azdo-plan-") as folder:
            yield Path(folder), "new-repository"
        return
    with repository.open_workspace(options, reporter, deadline) as workspace:
        yield workspace.root, workspace.state


def _plan_files(
    options: BootstrapOptions, distribution: Distribution, root: Path
) -> tuple[BootstrapFiles, dict[str, str]]:
    """As `bootstrap_steps.repository.Planner.plan`: the three files planned from the checkout, and what it holds."""
    from flux_azdo.files import read_manifests_folder
    from flux_azdo.git.paths import checkout_path
    from flux_azdo.manifests.distribution import COMPONENTS_FILE
    from flux_azdo.manifests.kustomization import KUSTOMIZATION_FILE, SYNC_FILE
    from flux_azdo.manifests.paths import manifests_dir, repository_path
    from flux_azdo.manifests.repository import plan_bootstrap_files

    directory = manifests_dir(repository_path(options.sync.path), options.namespace)
    folder = checkout_path(root, posixpath.join(directory, KUSTOMIZATION_FILE)).parent  # no symbolic links
    existing = read_manifests_folder(folder, (COMPONENTS_FILE, SYNC_FILE, KUSTOMIZATION_FILE))
    planned = plan_bootstrap_files(distribution, options.install, options.sync, existing, options.identity)
    return planned, existing


def _stop_on_findings(planned: BootstrapFiles, reporter: Reporter) -> None:
    """A user's kustomization.yaml that lacks what this run needs stops a bootstrap; the plan says so the same way."""
    from flux_azdo.manifests.kustomization import KUSTOMIZATION_FILE

    if not planned.findings:
        return
    path = posixpath.join(planned.directory, KUSTOMIZATION_FILE)
    for finding in planned.findings:
        reporter.failure(f"{path}{finding.problem.removeprefix(KUSTOMIZATION_FILE)}; add:")
        reporter.detail(finding.fix)
    raise UserError(
        f"a bootstrap would stop before pushing: {path} is yours and is kept as it is, but it lacks what this "
        "bootstrap needs",
        fix="add what is shown above to the file, commit it, and run the command again",
    )


def _manifests(options: BootstrapOptions, planned: BootstrapFiles, root: Path, deadline: Deadline) -> str:
    """What bootstrap's apply would send, built from the planned files (as `bootstrap_steps.install` builds it)."""
    from flux_azdo.bootstrap_steps.install import KUSTOMIZE_TIMEOUT
    from flux_azdo.cluster.kustomize import build, find_kustomize, needs_kustomize
    from flux_azdo.manifests.distribution import COMPONENTS_FILE
    from flux_azdo.manifests.kustomization import KUSTOMIZATION_FILE, SYNC_FILE

    contents = {posixpath.basename(f.path): f.content for f in planned.files}
    if needs_kustomize(contents[KUSTOMIZATION_FILE]):
        argv = find_kustomize(options.kustomize)
        return build(argv, root / planned.directory, timeout=deadline.remaining(KUSTOMIZE_TIMEOUT))
    return f"{contents[COMPONENTS_FILE]}\n---\n{contents[SYNC_FILE]}"


def _dry_run_apply(options: BootstrapOptions, cluster: Cluster, objects: list[dict[str, Any]]) -> list[ObjectChange]:
    """Server-side apply dry runs, as bootstrap's apply; a GitRepository losing its secretRef as bootstrap does it.

    Bootstrap removes that `secretRef` with a merge patch before its apply (`install.release_secret_ref`), since an
    apply would leave `secretRef: {}`, which the schema refuses: a dry-run apply against the live object gets that
    422. The patch is dry-run instead (the server checks it, stores nothing), and the GitRepository is an update:
    losing `secretRef` is a change whatever else the apply brings.
    """
    from flux_azdo.bootstrap_steps.install import release_secret_ref, releasing_secret_ref
    from flux_azdo.cluster.apply import ObjectChange, apply_objects

    released = releasing_secret_ref(options, cluster, objects)
    if released is None:
        return apply_objects(cluster, objects, field_manager="flux", dry_run=True)
    release_secret_ref(options, cluster, dry_run=True)
    index = next(i for i, obj in enumerate(objects) if obj is released)
    changes = apply_objects(cluster, objects[:index] + objects[index + 1 :], field_manager="flux", dry_run=True)
    api_version = str(released["apiVersion"])
    changes.insert(index, ObjectChange(api_version, "GitRepository", options.namespace, options.name, "configured"))
    return changes


def _object_plan(change: ObjectChange) -> ObjectPlan:
    return ObjectPlan(change.api_version, change.kind, change.namespace, change.name, _OBJECT_ACTIONS[change.action])


# ---------------------------------------------------------------------------------------------- secrets


def _plan_secrets(options: BootstrapOptions, cluster: Cluster) -> list[SecretPlan]:
    """The source secret (none with --provider azure) and the image pull secret, compared as bootstrap writes them."""
    plans: list[SecretPlan] = []
    if options.cluster_secret is not None:
        plans.append(_source_secret_plan(cluster, options.cluster_secret))
    install = options.install
    if install.image_pull_secret and install.registry_creds:
        from flux_azdo.cluster.secrets import DOCKER_CONFIG_JSON_KEY, docker_config, read_source_secret

        username, _, password = install.registry_creds.partition(":")
        wanted = docker_config(install.registry.split("/", 1)[0], username, password)
        live = read_source_secret(cluster, options.namespace, install.image_pull_secret)
        action: PlanAction = "create"
        if live is not None:
            action = "unchanged" if _json_equal(live.get(DOCKER_CONFIG_JSON_KEY), wanted) else "update"
        plans.append(SecretPlan(options.namespace, install.image_pull_secret, "image-pull", action))
    return plans


def _source_secret_plan(cluster: Cluster, secret: SourceSecret) -> SecretPlan:
    """As bootstrap updates the live Secret (`cluster.secrets.apply_source_secret`): the new keys in, the old
    credential's other keys out; unchanged when every new key holds its value already and none is to go."""
    from flux_azdo.cluster.secrets import read_source_secret, stale_credential_keys

    live = read_source_secret(cluster, secret.namespace, secret.name)
    if live is None:
        return SecretPlan(secret.namespace, secret.name, "source", "create")
    stale = stale_credential_keys(live, secret.string_data)
    same = not stale and all(live.get(key) == value for key, value in secret.string_data.items())
    return SecretPlan(secret.namespace, secret.name, "source", "unchanged" if same else "update", stale)


def _json_equal(text: str | None, wanted: Any) -> bool:
    if text is None:
        return False
    try:
        return bool(json.loads(text) == wanted)
    except ValueError:
        return False


# ---------------------------------------------------------------------------------------------- diffs


def _lines(text: str) -> list[str]:
    """Lines with their ends; a last line without one is marked as git marks it."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n" + _NO_NEWLINE
    return lines


def unified_diff(path: str, old: str | None, new: str) -> str:
    """`git diff`'s layout: a/ and b/ prefixes, /dev/null for a new file, three lines of context."""
    before = "/dev/null" if old is None else f"a/{path}"
    return "".join(difflib.unified_diff(_lines(old or ""), _lines(new), fromfile=before, tofile=f"b/{path}"))


def _file_plan(path: str, old: str | None, new: str, status: FileStatus) -> FilePlan:
    if status == "unchanged" or status == "keep":
        return FilePlan(path, "unchanged", "", 0, 0)
    diff = unified_diff(path, old, new)
    body = diff.splitlines()[2:]
    added = sum(line.startswith("+") for line in body)
    removed = sum(line.startswith("-") for line in body)
    return FilePlan(path, status, diff, added, removed)


# ---------------------------------------------------------------------------------------------- text


def render_plan(result: PlanResult, *, diff_lines: int | None = DEFAULT_DIFF_LINES) -> str:
    """The plan as a person reads it; `diff_lines` caps each file's diff (None: all of it, 0: none)."""
    out: list[str] = []
    where = {
        "existing": f'branch "{result.branch}"',
        "empty": f'branch "{result.branch}" (empty repository: the first push creates it)',
        "new-branch": f'branch "{result.branch}" (would be created from the default branch)',
        "new-repository": f'branch "{result.branch}" (the repository would be created: --create-repo)',
    }[result.repository]
    out.append(f"Repository {result.url}, {where}:")
    for f in result.files:
        counts = f" (+{f.added} -{f.removed})" if f.changed else ""
        out.append(f"  {f.status:<10} {f.path}{counts}")
    for f in result.files:
        if f.diff and diff_lines != 0:
            out.append("")
            out.extend(_capped(f, diff_lines))
    out.append("")
    install = ", first install: bootstrap installs the components" if result.install else ""
    out.append(f"Cluster {result.cluster} (Flux {result.version}{install}):")
    changed = [o for o in result.objects if o.action != "unchanged"]
    for o in changed:
        out.append(f"  {o.action:<10} {o.ref}")
    unchanged = len(result.objects) - len(changed)
    if unchanged:
        out.append(
            f"  {'unchanged':<10} {_plural(unchanged, 'other object') if changed else _plural(unchanged, 'object')}"
        )
    for s in result.secrets:
        what = "source secret" if s.purpose == "source" else "image pull secret"
        removed = f"; would remove the old {', '.join(s.removed_keys)}" if s.removed_keys else ""
        out.append(f"  {s.action:<10} Secret/{s.namespace}/{s.name} ({what}, values not shown{removed})")
    if result.secret("source") is None:
        out.append(
            f"  {'-':<10} no source secret: source-controller signs in with workload identity (--provider azure)"
        )
    out.append("")
    out.append(summary_line(result))
    return "\n".join(out) + "\n"


def _capped(f: FilePlan, limit: int | None) -> list[str]:
    lines = f.diff.rstrip("\n").split("\n")
    if limit is None or len(lines) <= limit:
        return lines
    hidden = len(lines) - limit
    return [
        *lines[:limit],
        f"... {_plural(hidden, 'more line')} of this diff not shown (+{f.added} -{f.removed} in all): "
        "--diff-lines all shows every line, --output json has the whole diff",
    ]


def summary_line(result: PlanResult) -> str:
    if not result.changed:
        return "Nothing would change: the repository and the cluster are as bootstrap would leave them."
    counts = result.summary()
    files, objects = counts["files"], counts["objects"]
    parts = [
        f"files: {files['create']} to create, {files['update']} to update",
        f"objects: {objects['create']} to create, {objects['update']} to update, {objects['unchanged']} unchanged",
    ]
    for s in result.secrets:
        what = "source secret" if s.purpose == "source" else "image pull secret"
        parts.append(f"{what}: {s.action if s.action == 'unchanged' else 'to ' + s.action}")
    return "Bootstrap would change: " + "; ".join(parts) + "."


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"
