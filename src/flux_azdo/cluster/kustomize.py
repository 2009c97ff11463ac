"""Building `kustomization.yaml` with the real kustomize, only when the file asks for more than Flux's default.

Flux's default `kustomization.yaml` just lists gotk-components.yaml and gotk-sync.yaml; those two files are applied
as they are, with no external tool. Anything else (user patches, our SSH or workload-identity patches, images,
namespace overrides) must be built by kustomize itself: reimplementing kustomize would give subtly different
objects from what kustomize-controller later applies from Git, and the two would fight.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import yaml

from flux_azdo.errors import UserError
from flux_azdo.manifests.distribution import COMPONENTS_FILE
from flux_azdo.manifests.kustomization import SYNC_FILE

_DEFAULT_RESOURCES = sorted([COMPONENTS_FILE, SYNC_FILE])
_HEADER = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization"}
INSTALL_HINT = (
    "install kustomize (https://kubectl.docs.kubernetes.io/installation/kustomize/) or kubectl "
    "(apt-get install kubernetes-client), or pass --kustomize with the path of either"
)
#: Variables that would point kustomize or kubectl at the user's own configuration, caches or plugins.
_PRIVATE_VARIABLES = ("KUBECONFIG", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "KUSTOMIZE_PLUGIN_HOME")


def needs_kustomize(kustomization_text: str) -> bool:
    """False only for Flux's default file: the two gotk resources (either order) and nothing else.

    Comments and layout do not matter; `apiVersion`/`kind` may be present (with their standard values) or not.
    Text that does not parse is left to kustomize, which says what is wrong with it.
    """
    try:
        document = yaml.safe_load(kustomization_text)
    except yaml.YAMLError:
        return True
    if not isinstance(document, dict):
        return True
    rest = dict(document)
    for key, value in _HEADER.items():
        if key in rest and rest.pop(key) != value:
            return True
    resources = rest.pop("resources", None)
    if rest or not isinstance(resources, list):
        return True
    return not (all(isinstance(r, str) for r in resources) and sorted(resources) == _DEFAULT_RESOURCES)


def find_kustomize(explicit: Path | None = None) -> list[str]:
    """The argv prefix that builds a directory: `[kustomize, build]` or `[kubectl, kustomize]`.

    `explicit` (--kustomize) wins and must be an executable file (or a name found on PATH); otherwise `kustomize`
    on PATH, then `kubectl` on PATH, whose built-in kustomize is enough for Flux's patches.
    """
    if explicit is not None:
        path = _executable(explicit)
        return [path, "kustomize"] if _is_kubectl(path) else [path, "build"]
    for name, verb in (("kustomize", "build"), ("kubectl", "kustomize")):
        found = shutil.which(name)
        if found:
            return [found, verb]
    raise UserError(
        "the kustomization.yaml needs kustomize to build it, and neither kustomize nor kubectl is on PATH",
        fix=INSTALL_HINT,
    )


def build(argv: Sequence[str], directory: Path, *, timeout: float = 60.0) -> str:
    """The YAML that `argv directory` prints; a failure is a UserError carrying kustomize's own first error line.

    The tool runs with a private, empty HOME and without KUBECONFIG, so nothing of the user's kubectl
    configuration is read or written (kubectl would otherwise create ~/.kube/cache).
    """
    command = [*argv, str(Path(directory).resolve())]
    tool = Path(argv[0]).name if argv else "kustomize"
    with tempfile.TemporaryDirectory(prefix="flux-azdo-kustomize-") as home:
        env = {k: v for k, v in os.environ.items() if k not in _PRIVATE_VARIABLES}
        env.update(HOME=home, GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1")
        try:
            completed = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                env=env,
                cwd=home,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise UserError(
                f"{tool} did not finish building {directory} within {timeout:g}s",
                fix="check the kustomization for remote bases that cannot be fetched",
            ) from None
        except OSError as error:
            raise UserError(
                f"cannot run {argv[0] if argv else 'kustomize'}: {error.strerror}", fix=INSTALL_HINT
            ) from None
    if completed.returncode != 0:
        detail = _first_error_line(completed.stderr.decode("utf-8", "replace")) or f"exit code {completed.returncode}"
        raise UserError(
            f"{tool} could not build {directory}: {detail}",
            fix=f"fix {directory / 'kustomization.yaml'} (run `{' '.join(command)}` to see the whole error)",
        )
    return completed.stdout.decode("utf-8")


def _executable(explicit: Path) -> str:
    candidate = Path(explicit).expanduser()
    if not candidate.exists() and len(candidate.parts) == 1:
        found = shutil.which(str(candidate))
        if found:
            return found
    if not candidate.is_file():
        raise UserError(f"--kustomize {explicit}: no such file", fix=INSTALL_HINT)
    if not os.access(candidate, os.X_OK):
        raise UserError(f"--kustomize {explicit} is not executable", fix=f"chmod +x {explicit}, or {INSTALL_HINT}")
    return str(candidate.resolve() if not candidate.is_absolute() else candidate)


def _is_kubectl(path: str) -> bool:
    name = Path(path).name.lower()
    return name.startswith("kubectl")


def _first_error_line(stderr: str) -> str:
    """kustomize's and kubectl's errors start with `Error:`/`error:`; usage text and blank lines say nothing.

    kubectl 1.32+ logs through klog instead: `E1126 10:27:52.121 24965 run.go:72] "command failed" err="..."`;
    only the quoted error is worth showing.
    """
    lines = [_klog_message(" ".join(line.split())) for line in stderr.splitlines()]
    lines = [line for line in lines if line]
    for line in lines:
        if line.lower().startswith("error"):
            return line
    return next((line for line in lines if not line.lower().startswith(("usage", "warning"))), "")


_KLOG = re.compile(r'^[EWIF]\d{4} [\d:.]+ +\d+ [^\]]+\] (?:"command failed" err=)?(?P<message>.*)$')


def _klog_message(line: str) -> str:
    match = _KLOG.match(line)
    if not match:
        return line
    message = match["message"]
    if message.startswith('"') and message.endswith('"'):
        try:
            message = str(json.loads(message))
        except ValueError:
            message = message[1:-1]
    return message
