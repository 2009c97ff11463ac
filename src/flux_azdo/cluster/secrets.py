"""The Secrets bootstrap writes through the API (never through Git): the Git credentials and the image pull secret.

Flux's `reconcileSecret` GETs the Secret, creates it when missing, and otherwise sets `stringData` on the live
object and sends a plain update (reference flux-bootstrap.md §2.5, §5.4). That update only *adds* `stringData` on
top of `.data`, so keys of the old credential stay: after a switch from a PAT to an SSH key without passphrase the
old `password` is taken for the key's passphrase, and source-controller fails with "decryption password
incorrect"; after a switch to a PAT, an SSH `identity` stays behind. Two changes from Flux: the same update also
drops the credential keys (`CREDENTIAL_KEYS`) the new credential does not have, keeping every other key (`ca.crt`,
...), for bootstrap and rotate-credentials alike; and nothing is written when the Secret already holds exactly the
new credential, so a re-run with nothing new makes zero write requests.

Secret values never reach an exception message: every API failure here is re-worded from what we know (kind,
namespace, name, status) and scrubbed of the values before it is raised.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import kubernetes.client

from flux_azdo.cluster.client import Cluster, NotFound
from flux_azdo.errors import UserError
from flux_azdo.manifests.sourcesecret import SourceSecret

SecretAction = Literal["created", "updated", "unchanged"]

DOCKER_CONFIG_JSON_TYPE = "kubernetes.io/dockerconfigjson"
DOCKER_CONFIG_JSON_KEY = ".dockerconfigjson"
#: Updates that lose a race with another writer (409 Conflict) are retried on a fresh read this many times.
_ATTEMPTS = 3
_HIDDEN = "***"
#: What a source Secret holds for the credential itself (other keys, such as ca.crt, are kept as they are).
CREDENTIAL_KEYS = ("username", "password", "identity", "identity.pub", "known_hosts", "bearerToken")


@dataclass(frozen=True)
class SourceSecretChange:
    """What writing the source Secret did: its action, and the old credential's keys it removed (names only)."""

    action: SecretAction
    removed_keys: tuple[str, ...] = ()


def stale_credential_keys(live_keys: Iterable[str], string_data: Mapping[str, str]) -> tuple[str, ...]:
    """The credential keys the live Secret holds and the new credential does not: they go, in `CREDENTIAL_KEYS`
    order. Keys that are not a credential (ca.crt, a user's own) are never among them."""
    present = set(live_keys)
    return tuple(key for key in CREDENTIAL_KEYS if key in present and key not in string_data)


def removed_keys_note(keys: Iterable[str]) -> str:
    """The suffix ` (removed the old password)`: how bootstrap, plan and rotate-credentials name the keys that go
    (names, never values); empty when none."""
    names = list(keys)
    return f" (removed the old {', '.join(names)})" if names else ""


def apply_source_secret(cluster: Cluster, secret: SourceSecret) -> SourceSecretChange:
    """Create the Git credentials Secret, or update it to the new credential (stale credential keys removed, other
    keys kept); no write when it already holds exactly that credential."""
    action, removed = _apply(cluster, secret.namespace, secret.name, dict(secret.string_data), None)
    return SourceSecretChange(action, removed)


def apply_image_pull_secret(
    cluster: Cluster, namespace: str, name: str, registry: str, username: str, password: str
) -> SecretAction:
    """The `kubernetes.io/dockerconfigjson` Secret for `--image-pull-secret` with `--registry-creds`."""
    config = docker_config(registry, username, password)
    action, _ = _apply(cluster, namespace, name, {DOCKER_CONFIG_JSON_KEY: docker_config_json(config)}, config)
    return action


def read_source_secret(cluster: Cluster, namespace: str, name: str) -> dict[str, str] | None:
    """The Secret's decoded `.data` (UTF-8), or None when it does not exist (rotate-credentials starts here)."""
    live = _read(cluster, namespace, name, values=())
    if live is None:
        return None
    return _decoded(live)


# ------------------------------------------------------------------------------------------------ dockerconfigjson


def docker_config(registry: str, username: str, password: str) -> dict[str, Any]:
    """`{"auths": {registry: {username, password, auth}}}` as Flux's GenerateDockerConfigJson builds it.

    Go's `omitempty` drops empty fields, so an empty user name or password is left out here too.
    """
    entry: dict[str, str] = {}
    if username:
        entry["username"] = username
    if password:
        entry["password"] = password
    entry["auth"] = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"auths": {registry: entry}}


def docker_config_json(config: Mapping[str, Any]) -> str:
    """The JSON text byte for byte as Go's json.Marshal writes it (compact, HTML characters escaped)."""
    text = json.dumps(config, separators=(",", ":"), ensure_ascii=False)
    for raw, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028")):
        text = text.replace(raw, escaped)
    return text.replace("\u2029", "\\u2029")


# ------------------------------------------------------------------------------------------------ internals


def _apply(
    cluster: Cluster, namespace: str, name: str, string_data: dict[str, str], docker: dict[str, Any] | None
) -> tuple[SecretAction, tuple[str, ...]]:
    """The action and, for a source Secret, the stale credential keys the update removed."""
    values = tuple(string_data.values()) + (_docker_values(docker) if docker is not None else ())
    for _ in range(_ATTEMPTS):
        live = _read(cluster, namespace, name, values)
        if live is None:
            if _create(cluster, namespace, name, string_data, docker is not None, values):
                return "created", ()
            continue  # someone created it meanwhile: compare with theirs
        data: dict[str, Any] = live.get("data") or {}
        stale: tuple[str, ...] = ()
        if docker is not None:
            _require_docker_type(live, namespace, name)
            if _same_docker_config(live, docker):
                return "unchanged", ()
        else:
            stale = stale_credential_keys(data, string_data)
            if not stale and _holds(live, string_data):
                return "unchanged", ()
        # One update, on the version just read (a 409 reads again): the new keys in, the stale ones out.
        live["data"] = {key: value for key, value in data.items() if key not in stale}
        live["stringData"] = string_data
        if _update(cluster, namespace, name, live, values):
            return "updated", stale
    raise UserError(
        f"cannot update Secret {namespace}/{name}: it kept changing while we wrote it",
        fix="find what else writes this Secret (kubectl get secret -o yaml shows its managedFields) and re-run",
    )


def _core(cluster: Cluster) -> Any:
    return kubernetes.client.CoreV1Api(cluster.api_client)


def _read(cluster: Cluster, namespace: str, name: str, values: Iterable[str]) -> dict[str, Any] | None:
    try:
        response = _call(
            cluster,
            f"read Secret {namespace}/{name}",
            values,
            lambda core: core.read_namespaced_secret(
                name, namespace, _preload_content=False, _request_timeout=cluster.access.timeout
            ),
        )
    except NotFound:
        return None
    body: dict[str, Any] = json.loads(response.data)
    return body


def _create(
    cluster: Cluster, namespace: str, name: str, string_data: dict[str, str], docker: bool, values: Iterable[str]
) -> bool:
    """True when created; False when it appeared since our read (409 AlreadyExists)."""
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "stringData": string_data,
    }
    if docker:
        body["type"] = DOCKER_CONFIG_JSON_TYPE
    try:
        _call(
            cluster,
            f"create Secret {namespace}/{name}",
            values,
            lambda core: core.create_namespaced_secret(
                namespace, body, _preload_content=False, _request_timeout=cluster.access.timeout
            ),
        )
    except NotFound:
        raise UserError(
            f"cannot create Secret {namespace}/{name}: the namespace {namespace} does not exist",
            fix="install the components first (they create the namespace), or create it with "
            f"`kubectl create namespace {namespace}`",
        ) from None
    except _Conflict:
        return False
    return True


def _update(cluster: Cluster, namespace: str, name: str, live: dict[str, Any], values: Iterable[str]) -> bool:
    """True when updated; False when the Secret changed or vanished since our read (409 or 404: read again)."""
    try:
        _call(
            cluster,
            f"update Secret {namespace}/{name}",
            values,
            lambda core: core.replace_namespaced_secret(
                name, namespace, live, _preload_content=False, _request_timeout=cluster.access.timeout
            ),
        )
    except (_Conflict, NotFound):
        return False
    return True


class _Conflict(Exception):
    """A 409 from the server: the object exists already, or changed since it was read."""


def _call(cluster: Cluster, doing: str, values: Iterable[str], request: Callable[[Any], Any]) -> Any:
    """One CoreV1Api request: 409 becomes `_Conflict`, other failures a UserError without any secret value in it."""
    try:
        with cluster.errors(doing):
            try:
                return request(_core(cluster))
            except kubernetes.client.ApiException as error:
                if error.status == 409:
                    raise _Conflict() from None
                raise
    except UserError as error:
        message, fix = _scrub(error.message, values), _scrub(error.fix, values) if error.fix else None
        if (message, fix) == (error.message, error.fix):
            raise
        raise (NotFound if isinstance(error, NotFound) else UserError)(message, fix=fix) from None


def _scrub(text: str, values: Iterable[str]) -> str:
    # Longest first, so a value that contains another is hidden whole.
    for value in sorted({v for v in values if v}, key=len, reverse=True):
        text = text.replace(value, _HIDDEN)
    return text


def _decoded(live: Mapping[str, Any]) -> dict[str, str]:
    data = live.get("data") or {}
    decoded: dict[str, str] = {}
    for key, value in data.items():
        try:
            decoded[str(key)] = base64.b64decode(str(value or ""), validate=True).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            decoded[str(key)] = ""
    return decoded


def _holds(live: Mapping[str, Any], string_data: Mapping[str, str]) -> bool:
    """Every key of the new data already has that value (other keys do not matter: an update would keep them;
    stale credential keys are looked for apart)."""
    current = _decoded(live)
    return all(current.get(key) == value for key, value in string_data.items())


def _docker_values(config: Mapping[str, Any]) -> tuple[str, ...]:
    entries = [e for e in (config.get("auths") or {}).values() if isinstance(e, dict)]
    return tuple(str(v) for e in entries for k, v in e.items() if k in ("password", "auth"))


def _same_docker_config(live: Mapping[str, Any], config: Mapping[str, Any]) -> bool:
    """Compare as JSON: a file written by Go or by hand holds the same credentials in other bytes."""
    text = _decoded(live).get(DOCKER_CONFIG_JSON_KEY)
    if text is None:
        return False
    try:
        return bool(json.loads(text) == config)
    except ValueError:
        return False


def _require_docker_type(live: Mapping[str, Any], namespace: str, name: str) -> None:
    """A Secret's type cannot be changed, and the kubelet reads pull credentials only from this type."""
    kind = live.get("type") or "Opaque"
    if kind != DOCKER_CONFIG_JSON_TYPE:
        raise UserError(
            f"Secret {namespace}/{name} exists with type {kind}, and an image pull secret must have type "
            f"{DOCKER_CONFIG_JSON_TYPE} (the type of a Secret cannot be changed)",
            fix=f"delete it (kubectl delete secret -n {namespace} {name}) and re-run, or pass another "
            "--image-pull-secret name",
        )
