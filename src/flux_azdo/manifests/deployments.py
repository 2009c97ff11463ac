"""Line edits on a controller Deployment, in the exact shape kustomize writes it.

`flux install` renders its flags into the Deployments with kustomize patches; the
result has sorted keys and unindented lists. Each function here changes only the lines
a flag owns and inserts new pod-spec keys at their sorted position, which reproduces
kustomize's output without re-serialising the document.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from flux_azdo.manifests.goyaml import key_sorts_before, scalar

FEATURE_GATE_EXTERNAL_ARTIFACT = "--feature-gates=ExternalArtifact=true"
_ARG = re.compile(r"^(\s+)- (--[A-Za-z0-9-]+)=(.*)$")
_IMAGE = re.compile(r"^(\s+)image: (\S+)$")
POD_SPEC_INDENT = 6


@dataclass(frozen=True)
class DeploymentEdits:
    """What the install flags say about one controller's Deployment."""

    args: Mapping[str, str]  # flag -> value, applied where the flag already exists
    feature_gate: bool = False  # source-watcher selected: kustomize/helm-controller get the gate
    registry: str = ""
    image_pull_secret: str = ""
    toleration_keys: Sequence[str] = field(default_factory=tuple)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _edit_args(lines: list[str], edits: DeploymentEdits, wants_gate: bool) -> list[str]:
    out: list[str] = []
    last_arg = -1
    arg_indent = ""
    has_gate = False
    for line in lines:
        match = _ARG.match(line)
        if match:
            indent, flag, _ = match.groups()
            if f"{flag}={match.group(3)}" == FEATURE_GATE_EXTERNAL_ARTIFACT:
                if not wants_gate:
                    continue
                has_gate = True
            elif flag in edits.args:
                line = f"{indent}- {scalar(f'{flag}={edits.args[flag]}')}"
            last_arg, arg_indent = len(out), indent
        out.append(line)
    if wants_gate and not has_gate and last_arg >= 0:
        out.insert(last_arg + 1, f"{arg_indent}- {FEATURE_GATE_EXTERNAL_ARTIFACT}")
    return out


def _edit_image(lines: list[str], registry: str) -> list[str]:
    if not registry:
        return lines
    out = []
    for line in lines:
        match = _IMAGE.match(line)
        if match:
            # `<anything>/<controller>:<tag>` becomes `<registry>/<controller>:<tag>`, as
            # Flux's kustomize `images: newName` does.
            reference = match.group(2)
            repository_and_tag = reference.rsplit("/", 1)[-1]
            line = f"{match.group(1)}image: {scalar(f'{registry}/{repository_and_tag}')}"
        out.append(line)
    return out


def _pod_spec_range(lines: list[str]) -> tuple[int, int] | None:
    """Line range of the pod template's spec keys (indent 6), or None if absent."""
    template = next((i for i, line in enumerate(lines) if line == "  template:"), None)
    if template is None:
        return None
    spec = next((i for i in range(template + 1, len(lines)) if lines[i] == "    spec:"), None)
    if spec is None:
        return None
    end = spec + 1
    while end < len(lines) and (not lines[end] or _indent(lines[end]) >= POD_SPEC_INDENT):
        end += 1
    return spec + 1, end


def _set_pod_spec_key(lines: list[str], key: str, block: list[str]) -> list[str]:
    span = _pod_spec_range(lines)
    if span is None:
        return lines
    start, end = span
    prefix = " " * POD_SPEC_INDENT
    # Drop the key if present: its line plus its nested or unindented-list lines.
    for i in range(start, end):
        if lines[i] == f"{prefix}{key}:" or lines[i].startswith(f"{prefix}{key}: "):
            j = i + 1
            while j < end and (_indent(lines[j]) > POD_SPEC_INDENT or lines[j].startswith(prefix + "- ")):
                j += 1
            lines = lines[:i] + lines[j:]
            end -= j - i
            break
    if not block:
        return lines
    insert_at = end
    for i in range(start, end):
        line = lines[i]
        if _indent(line) == POD_SPEC_INDENT and not line.startswith(prefix + "- "):
            existing = line[POD_SPEC_INDENT:].split(":", 1)[0]
            if key_sorts_before(key, existing):
                insert_at = i
                break
    return lines[:insert_at] + block + lines[insert_at:]


def edit_deployment(text: str, component: str, edits: DeploymentEdits) -> str:
    """Apply the install flags to one controller Deployment's text."""
    lines = text.split("\n")
    wants_gate = edits.feature_gate and component in ("kustomize-controller", "helm-controller")
    lines = _edit_args(lines, edits, wants_gate)
    lines = _edit_image(lines, edits.registry)
    prefix = " " * POD_SPEC_INDENT
    pull_secrets = (
        [f"{prefix}imagePullSecrets:", f"{prefix}- name: {scalar(edits.image_pull_secret)}"]
        if edits.image_pull_secret
        else []
    )
    lines = _set_pod_spec_key(lines, "imagePullSecrets", pull_secrets)
    tolerations: list[str] = []
    if edits.toleration_keys:
        tolerations.append(f"{prefix}tolerations:")
        for toleration_key in edits.toleration_keys:
            tolerations += [f"{prefix}- key: {scalar(toleration_key)}", f"{prefix}  operator: Exists"]
    lines = _set_pod_spec_key(lines, "tolerations", tolerations)
    return "\n".join(lines)
