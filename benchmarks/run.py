"""Benchmarks: component generation and CLI start-up (goals: < 0.2 s and < 0.3 s).

Run with `make bench`. Figures are wall-clock minimum and median over repeated runs on
this machine; they are reported, not asserted, so a busy machine never fails a build.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from flux_azdo.manifests.distribution import load_distribution  # noqa: E402
from flux_azdo.manifests.install import InstallOptions, generate_components  # noqa: E402
from flux_azdo.sandbox import sample_distribution_path  # noqa: E402

CORPUS_6C = ROOT.parent / "shared" / "flux-corpus" / "sets" / "v2.6.0-6c-ssh-github" / "gotk-components.yaml"
NON_DEFAULT = InstallOptions(
    components_extra=("image-reflector-controller", "image-automation-controller"),
    namespace="gitops",
    registry="myacr.azurecr.io/fluxcd",
    image_pull_secret="acr-pull",
    toleration_keys=("node-role/flux",),
    watch_all_namespaces=False,
    log_level="debug",
    cluster_domain="corp.local",
)


def measure(label: str, action: Callable[[], object], runs: int) -> None:
    action()  # warm caches and imports
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    low, middle = min(times) * 1000, statistics.median(times) * 1000
    print(f"{label:<58} min {low:7.1f} ms   median {middle:7.1f} ms   ({runs} runs)")


def main() -> int:
    if CORPUS_6C.is_file():
        source, label = CORPUS_6C, "v2.6.0 6C from ../shared/flux-corpus"
    else:
        with sample_distribution_path() as sample:
            source, label = Path(sample), "bundled sample (corpus absent)"
    print(f"distribution: {label}, {source.stat().st_size} bytes")
    dist = load_distribution(source)
    measure("generate 6C components, non-default flags", lambda: generate_components(dist, NON_DEFAULT), 50)
    measure(
        "read + parse + generate 6C, non-default flags",
        lambda: generate_components(load_distribution(source), NON_DEFAULT),
        50,
    )
    cli = [str(Path(sys.executable).with_name("flux-azdo"))]
    if not Path(cli[0]).exists():
        cli = [sys.executable, "-m", "flux_azdo"]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    for args in (["--help"], ["--version"]):
        measure(
            f"CLI start-up: flux-azdo {' '.join(args)}",
            lambda a=args: subprocess.run([*cli, *a], capture_output=True, env=env, check=True),
            15,
        )
    measure(
        "python -c pass (interpreter floor)", lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), 15
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
