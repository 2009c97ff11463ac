"""Golden tests over ../shared/flux-corpus: real files written by `flux bootstrap`, byte for byte.

For every Flux version with several components files, each file is derived from the
largest one with the flags recorded in its SOURCE.txt. Every file is also reproduced
from itself, and every set's gotk-sync.yaml and kustomization.yaml from its URL, branch
and path. Files written by pre-v2.0.0-rc.4 CLIs (kustomize's legacy kind order, v1beta2
sync APIs) are not derivable: current Flux no longer writes that order.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from flux_azdo.errors import UserError
from flux_azdo.manifests.distribution import Distribution, load_distribution, parse_distribution
from flux_azdo.manifests.install import InstallOptions, generate_components
from flux_azdo.manifests.repository import WorkloadIdentity, plan_bootstrap_files
from flux_azdo.manifests.sync import SyncOptions, generate_sync
from support.corpus import corpus_dir

CLIENT = "6f0b1a52-5c4e-4a43-9d7e-3f5b1c0d2e11"
MISSING = "golden data ../shared/flux-corpus is not next to this checkout (set FLUX_CORPUS_DIR to use it)"


def _cases(values: list, arity: int = 1) -> list:  # type: ignore[type-arg]
    """The parameters, or one clearly skipped case when the corpus is absent."""
    if values or corpus_dir() is not None:
        return values
    return [pytest.param(*([None] * arity), marks=pytest.mark.skip(reason=MISSING), id="no-corpus")]


@dataclass(frozen=True)
class CorpusFile:
    path: Path
    version: str
    components: tuple[str, ...]
    source: str  # the SOURCE.txt that records how it was made

    @property
    def id(self) -> str:
        return str(self.path.relative_to(self.path.parents[2]))

    @property
    def legacy(self) -> bool:
        return "legacy" in self.source or "kind-sorted" in self.source

    def options(self) -> InstallOptions:
        """The `flux install` flags recorded in SOURCE.txt (the header records --components)."""
        src = self.source

        def flag(name: str) -> str | None:
            match = re.search(rf"--{name}[= ]([A-Za-z0-9./_-]+)", src)
            return match.group(1).rstrip(".") if match else None

        return InstallOptions(
            components=self.components,
            network_policy="--network-policy=false" not in src and "network_policies: 0" not in src,
            log_level=flag("log-level") or "info",
            cluster_domain=flag("cluster-domain") or "cluster.local",
            registry=flag("registry") or "ghcr.io/fluxcd",
            image_pull_secret=flag("image-pull-secret") or "",
        )


def _components_files() -> list[CorpusFile]:
    root = corpus_dir()
    if root is None:
        return []
    found = []
    for path in sorted(root.glob("*/**/gotk-components*.yaml")):
        header = path.read_text().split("\n", 4)
        found.append(
            CorpusFile(
                path,
                header[2].removeprefix("# Flux Version: "),
                tuple(header[3].removeprefix("# Components: ").split(",")),
                (path.parent / "SOURCE.txt").read_text(),
            )
        )
    return found


FILES = _components_files()
MODERN = [f for f in FILES if not f.legacy]


def _derivations() -> list[tuple[CorpusFile, CorpusFile]]:
    by_version: dict[str, list[CorpusFile]] = defaultdict(list)
    for f in MODERN:
        by_version[f.version].append(f)
    pairs = []
    for files in by_version.values():
        base = max(files, key=lambda f: f.path.stat().st_size)
        pairs += [
            (base, other) for other in files if other is not base and other.path.read_bytes() != base.path.read_bytes()
        ]
    return pairs


def _sets() -> list[Path]:
    root = corpus_dir()
    return sorted((root / "sets").iterdir()) if root else []


def _v1_sync_sets() -> list[Path]:
    """Sets whose gotk-sync.yaml uses the v1 APIs every current Flux CLI writes."""
    return [p for p in _sets() if "v1beta" not in (p / "gotk-sync.yaml").read_text()]


@pytest.mark.parametrize(("base", "target"), _cases(_derivations(), 2), ids=lambda f: f.id)
def test_every_same_version_file_is_derived_from_the_largest(
    corpus: Path, base: CorpusFile, target: CorpusFile
) -> None:
    derived = generate_components(load_distribution(base.path), target.options())
    assert derived == target.path.read_text()


def test_derivations_cover_every_version_with_several_files(corpus: Path) -> None:
    versions = {t.version for _, t in _derivations()}
    several = {f.version for f in MODERN if sum(g.version == f.version for g in MODERN) > 1}
    assert versions and versions == {
        v for v in several if len({g.path.read_bytes() for g in MODERN if g.version == v}) > 1
    }


@pytest.mark.parametrize("target", _cases(MODERN), ids=lambda f: f.id)
def test_every_file_is_reproduced_from_itself(corpus: Path, target: CorpusFile) -> None:
    assert generate_components(load_distribution(target.path), target.options()) == target.path.read_text()


@pytest.mark.parametrize("target", _cases([f for f in MODERN if len(f.components) >= 6]), ids=lambda f: f.id)
def test_non_default_flags_round_trip_on_real_files(corpus: Path, target: CorpusFile) -> None:
    dist = load_distribution(target.path)
    custom = InstallOptions(
        components=target.components, namespace="gitops", registry="myacr.azurecr.io/flux", image_pull_secret="acr",
        toleration_keys=("flux",), watch_all_namespaces=False, log_level="error", cluster_domain="corp.local",
        network_policy=target.options().network_policy,
    )  # fmt: skip
    once = generate_components(dist, custom)
    assert "flux-system" not in once
    assert generate_components(parse_distribution(once, "custom"), target.options()) == target.path.read_text()


@pytest.mark.parametrize("set_dir", _cases(_v1_sync_sets()), ids=lambda p: p.name)
def test_sync_file_of_every_set_from_its_url_branch_and_path(corpus: Path, set_dir: Path) -> None:
    expected = (set_dir / "gotk-sync.yaml").read_text()
    repo, kustomization = [d for d in yaml.safe_load_all(expected) if d]
    options = SyncOptions(
        url=repo["spec"]["url"],
        branch=repo["spec"]["ref"]["branch"],
        path=kustomization["spec"]["path"],
        interval=repo["spec"]["interval"],
    )
    assert generate_sync(options) == expected


@pytest.mark.parametrize(
    "set_dir", _cases([p for p in _sets() if "legacy" not in (p / "SOURCE.txt").read_text()]), ids=lambda p: p.name
)
def test_every_set_is_planned_exactly_as_bootstrap_committed_it(corpus: Path, set_dir: Path) -> None:
    target = next(f for f in MODERN if f.path.parent == set_dir)
    repo, kustomization = [d for d in yaml.safe_load_all((set_dir / "gotk-sync.yaml").read_text()) if d]
    sync = SyncOptions(
        url=repo["spec"]["url"], branch=repo["spec"]["ref"]["branch"], path=kustomization["spec"]["path"]
    )
    user_file = (set_dir / "kustomization.yaml").read_text()
    is_default = len(user_file.encode()) == 115
    existing = (
        {}
        if is_default
        else {
            p.name: p.read_text()
            for p in set_dir.iterdir()
            if p.name not in ("SOURCE.txt", "gotk-components.yaml", "gotk-sync.yaml")
        }
    )
    plan = plan_bootstrap_files(load_distribution(target.path), target.options(), sync, existing)
    contents = {f.path.rsplit("/", 1)[1]: f for f in plan.files}
    assert contents["gotk-components.yaml"].content == target.path.read_text()
    assert contents["gotk-sync.yaml"].content == (set_dir / "gotk-sync.yaml").read_text()
    assert contents["kustomization.yaml"].content == user_file
    assert contents["kustomization.yaml"].status == ("create" if is_default else "keep")
    assert plan.directory == kustomization["spec"]["path"].removeprefix("./") + "/flux-system"


def _release(version: str) -> Distribution:
    match = next(f for f in MODERN if f.version == version)
    return load_distribution(match.path)


def test_provider_azure_needs_flux_2_4(corpus: Path) -> None:
    sync = SyncOptions(url="https://dev.azure.com/o/p/_git/r", provider="azure")
    with pytest.raises(UserError, match="Flux v2.3.0 cannot use --provider azure"):
        plan_bootstrap_files(_release("v2.3.0"), InstallOptions(), sync, {}, WorkloadIdentity(CLIENT))
    plan = plan_bootstrap_files(_release("v2.4.0"), InstallOptions(), sync, {}, WorkloadIdentity(CLIENT))
    assert "  provider: azure\n" in plan.files[1].content


def test_sparse_checkout_needs_flux_2_6(corpus: Path) -> None:
    sync = SyncOptions(url="https://dev.azure.com/o/p/_git/r", sparse_checkout=("clusters",))
    with pytest.raises(UserError, match="Flux v2.5.1 cannot use --sparse-checkout"):
        plan_bootstrap_files(_release("v2.5.1"), InstallOptions(), sync, {})
    assert "sparseCheckout" in plan_bootstrap_files(_release("v2.6.0"), InstallOptions(), sync, {}).files[1].content
