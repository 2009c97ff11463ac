"""Shared fixtures: the bundled sample distribution, and the Flux corpus in ../shared when present."""

from __future__ import annotations

from pathlib import Path

import pytest

from flux_azdo.manifests.distribution import Distribution, parse_distribution
from flux_azdo.sandbox import sample_distribution_path
from support.corpus import corpus_dir


@pytest.fixture(scope="session")
def sample_text() -> str:
    with sample_distribution_path() as path:
        return path.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def sample(sample_text: str) -> Distribution:
    return parse_distribution(sample_text, "sample")


@pytest.fixture(scope="session")
def sample_file(tmp_path_factory: pytest.TempPathFactory, sample_text: str) -> Path:
    path = tmp_path_factory.mktemp("sample") / "gotk-components.yaml"
    path.write_text(sample_text, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def corpus() -> Path:
    path = corpus_dir()
    if path is None:
        pytest.skip("golden data ../shared/flux-corpus is not next to this checkout (set FLUX_CORPUS_DIR to use it)")
    return path
