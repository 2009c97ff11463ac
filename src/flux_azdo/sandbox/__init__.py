"""Local stand-ins for Azure DevOps and Kubernetes, used only by `flux-azdo demo` and the tests.

Today it holds the sample distribution: a small, hand-written components file in Flux's
shape (header `# Flux Version: v0.0.0-sample`). It is not Flux: the schemas are short
and the images do not exist. This package never imports the product's code.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

SAMPLE_VERSION = "v0.0.0-sample"


@contextlib.contextmanager
def sample_distribution_path() -> Iterator[Path]:
    """A filesystem path to the bundled sample gotk-components.yaml, valid inside the block."""
    ref = resources.files(__name__) / "distribution" / "gotk-components.yaml"
    with resources.as_file(ref) as path:
        yield path
