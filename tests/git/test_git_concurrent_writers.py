"""Twenty bootstraps racing for one branch of one repository, each with its own cluster path: all land, none lost.

The writers are threads in this process, each with its own Workspace (its own checkout, credential folder and git
processes), started together against an empty repository, so they also race to create the branch.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from git_checks import fresh_clone, git_out, pat_auth

from flux_azdo.git import Change, PublishResult, Workspace
from flux_azdo.sandbox.runtime import Sandbox

WRITERS = 20


def cluster_files(index: int) -> dict[str, str | None]:
    name = f"c{index:02d}"
    return {
        f"clusters/{name}/flux-system/gotk-sync.yaml": f"# sync for {name}\npath: ./clusters/{name}\n",
        f"clusters/{name}/flux-system/kustomization.yaml": f"# kustomization for {name}\n",
    }


def test_twenty_concurrent_writers_all_land(azdo_sandbox: Sandbox, tmp_path: Path) -> None:
    auth = pat_auth(azdo_sandbox)
    start = threading.Barrier(WRITERS)
    retries: list[tuple[int, str]] = []

    def writer(index: int) -> PublishResult:
        with Workspace(azdo_sandbox.repo_url, "main", auth, temp_parent=tmp_path / "work") as workspace:
            start.wait(timeout=120)
            return workspace.publish(
                lambda root: [Change(f"Add Flux sync manifests for c{index:02d}", cluster_files(index))],
                on_retry=lambda attempt, reason: retries.append((attempt, reason)),
            )

    with ThreadPoolExecutor(WRITERS) as pool:
        results = list(pool.map(writer, range(1, WRITERS + 1)))

    assert all(result.pushed and len(result.commits) == 1 for result in results)
    assert sum(result.created_branch for result in results) == 1
    # Some writers had to retry (they all started on the empty repository), and none was forced through.
    assert sum(result.attempts for result in results) == WRITERS + len(retries) > WRITERS
    assert all("the branch moved" in reason or "connection" in reason for _, reason in retries)

    clone = fresh_clone(azdo_sandbox, tmp_path)
    clusters = sorted(path.name for path in (clone / "clusters").iterdir())
    assert clusters == [f"c{i:02d}" for i in range(1, WRITERS + 1)]
    for index in range(1, WRITERS + 1):
        for relative, content in cluster_files(index).items():
            assert (clone / relative).read_text() == content
    # Exactly one commit per writer, in one line of history (no merges, nothing rewritten).
    assert git_out(clone, "rev-list", "--count", "HEAD").strip() == str(WRITERS)
    assert git_out(clone, "rev-list", "--merges", "HEAD").strip() == ""
    subjects = git_out(clone, "log", "--format=%s").split("\n")
    assert sorted(s for s in subjects if s) == sorted(f"Add Flux sync manifests for c{i:02d}" for i in range(1, 21))
    assert not list((tmp_path / "work").iterdir())  # every checkout and credential folder was removed
