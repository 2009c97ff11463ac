"""Where the golden Flux corpus lives: `../shared/flux-corpus` next to the checkout."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def corpus_dir() -> Path | None:
    """The corpus folder (or $FLUX_CORPUS_DIR), or None when it is not there."""
    configured = os.environ.get("FLUX_CORPUS_DIR")
    path = Path(configured) if configured else ROOT.parent / "shared" / "flux-corpus"
    return path if (path / "INDEX.md").is_file() else None
