"""The Flux controllers a distribution can hold, and the rules for choosing them.

Names, defaults and validation follow `flux bootstrap` / `flux install`: the order the
user gives is kept, because it decides both the `# Components:` header and the order
of the documents in gotk-components.yaml.
"""

from __future__ import annotations

from collections.abc import Sequence

from flux_azdo.errors import UserError

DEFAULT_COMPONENTS: tuple[str, ...] = (
    "source-controller",
    "kustomize-controller",
    "helm-controller",
    "notification-controller",
)
EXTRA_COMPONENTS: tuple[str, ...] = (
    "image-reflector-controller",
    "image-automation-controller",
    "source-watcher",
)
KNOWN_COMPONENTS: tuple[str, ...] = DEFAULT_COMPONENTS + EXTRA_COMPONENTS
REQUIRED_COMPONENTS: tuple[str, ...] = ("source-controller", "kustomize-controller")
NOTIFICATION_CONTROLLER = "notification-controller"
SOURCE_WATCHER = "source-watcher"


def select_components(components: Sequence[str], extras: Sequence[str] = ()) -> tuple[str, ...]:
    """Validate `--components` plus `--components-extra` and return them in the order given."""
    selected: list[str] = []
    for name in [*components, *extras]:
        if name not in KNOWN_COMPONENTS:
            raise UserError(f"component {name!r} is not available: choose from {', '.join(KNOWN_COMPONENTS)}")
        if name in selected:
            raise UserError(f"component {name!r} is listed twice: name each component once")
        selected.append(name)
    for name in REQUIRED_COMPONENTS:
        if name not in selected:
            raise UserError(f"component {name!r} is required: add it to --components")
    return tuple(selected)
