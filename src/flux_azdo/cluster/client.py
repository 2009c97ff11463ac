"""The connection to a Kubernetes cluster, and the translation of its failures into `UserError`s.

Everything in `flux_azdo.cluster` goes through one `Cluster`: it finds the kubeconfig as kubectl does, keeps TLS
verification on, puts a timeout on every request (the kubernetes client's default is to wait forever), and turns
API and network failures into one-line errors that say how to fix them, because a traceback about urllib3 tells an
AKS user nothing.

KUBECONFIG with several files is **merged as kubectl merges it**: the first file that names a cluster, user or
context wins for that name, and the first file that sets `current-context` wins. Relative paths in each file stay
relative to that file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import ssl
import tempfile
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import kubernetes.client
import kubernetes.config
import urllib3
import yaml
from kubernetes.client.rest import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.config.kube_config import KubeConfigLoader, KubeConfigMerger
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ResourceNotFoundError, ResourceNotUniqueError

from flux_azdo.errors import UserError

#: What to run to get a kubeconfig for AKS; every "no credentials" fix names it.
AKS_CREDENTIALS = "az aks get-credentials --resource-group <group> --name <cluster>"
_IN_CLUSTER_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
_FORBIDDEN = re.compile(r'cannot (?P<verb>\S+) resource "(?P<resource>[^"]+)"(?: in API group "(?P<group>[^"]*)")?')


@dataclass(frozen=True)
class ClusterAccess:
    """How to reach the cluster: the `--kubeconfig`, `--context` and per-request timeout of the command line."""

    #: --kubeconfig; else KUBECONFIG (merged as kubectl does), else ~/.kube/config, else the in-cluster account.
    kubeconfig: Path | None = None
    #: --context; else the kubeconfig's current-context.
    context: str | None = None
    #: Seconds for every API request (connect + answer). Watches pass their own, longer `_request_timeout`.
    timeout: float = 30.0


class _ApiClient(kubernetes.client.ApiClient):  # type: ignore[misc]
    """An ApiClient that applies a default timeout to every request that does not bring its own.

    The dynamic client's discovery requests (/version, /apis, ...) take no timeout argument at all; this is the one
    place that covers them too.
    """

    def __init__(self, configuration: Any, timeout: float) -> None:
        super().__init__(configuration)
        self.default_timeout = timeout

    def request(
        self,
        method: str,
        url: str,
        query_params: Any = None,
        headers: Any = None,
        post_params: Any = None,
        body: Any = None,
        _preload_content: bool = True,
        _request_timeout: Any = None,
    ) -> Any:
        timeout = self.default_timeout if _request_timeout is None else _request_timeout
        return super().request(method, url, query_params, headers, post_params, body, _preload_content, timeout)


class Cluster:
    """One cluster connection. Discovery (which kinds exist and where) is fetched once and cached here."""

    def __init__(self, access: ClusterAccess) -> None:
        self.access = access
        configuration, self.server, self.context = _load_configuration(access)
        self.api_client: Any = _ApiClient(configuration, access.timeout)
        self._dynamic: Any = None
        self._resources: dict[tuple[str, str], Any] = {}
        # The dynamic client caches discovery in a file; the default one is shared by every process and run on the
        # machine (/tmp/osrcp-<hash of the URL>.json) and can go stale, so each Cluster keeps its own.
        self._scratch = tempfile.mkdtemp(prefix="flux-azdo-kube-")
        self._cleanup = weakref.finalize(self, shutil.rmtree, self._scratch, True)

    # ------------------------------------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        self.api_client.close()
        rest = getattr(self.api_client, "rest_client", None)
        pool = getattr(rest, "pool_manager", None)
        if pool is not None:
            pool.clear()
        self._cleanup()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------------ queries

    @property
    def dynamic(self) -> Any:
        """The kubernetes DynamicClient (created on first use: creating it already asks the server for discovery)."""
        if self._dynamic is None:
            with self.errors("read the API discovery"):
                self._dynamic = DynamicClient(self.api_client, cache_file=os.path.join(self._scratch, "discovery.json"))
        return self._dynamic

    def server_version(self) -> str:
        """The server's `gitVersion`, such as "v1.32.4"."""
        with self.errors("read the server version"):
            info = kubernetes.client.VersionApi(self.api_client).get_code(_request_timeout=self.access.timeout)
        return str(info.git_version)

    def resource(self, api_version: str, kind: str) -> Any:
        """The dynamic client's resource for a kind; a kind the server does not serve is a UserError."""
        key = (api_version, kind)
        cached = self._resources.get(key)
        if cached is not None:
            return cached
        dynamic = self.dynamic
        try:
            with self.errors(f"look up {kind} ({api_version})"):
                found = dynamic.resources.get(api_version=api_version, kind=kind)
        except (ResourceNotFoundError, ResourceNotUniqueError):
            group = api_version.rpartition("/")[0]
            hint = (
                f"install the CustomResourceDefinition for the group {group} first"
                if "." in group
                else "check apiVersion and kind (kubectl api-resources lists what the server serves)"
            )
            raise UnknownKind(
                f"the cluster at {self.server} does not serve {kind} in {api_version}", fix=hint
            ) from None
        self._resources[key] = found
        return found

    def forget_resources(self) -> None:
        """Drop cached discovery, so kinds registered since (new CRDs) are found."""
        self._resources.clear()

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """The live object as a plain dict, or None when it does not exist."""
        resource = self.resource(api_version, kind)
        where = f"{namespace}/{name}" if namespace else name
        try:
            with self.errors(f"read {kind} {where}"):
                response = self.dynamic.get(
                    resource,
                    name=name,
                    namespace=namespace if resource.namespaced else None,
                    serialize=False,
                    _request_timeout=self.access.timeout,
                )
        except NotFound:
            return None
        body: dict[str, Any] = json.loads(response.data)
        return body

    # ------------------------------------------------------------------------------------------------ errors

    @contextmanager
    def errors(self, doing: str) -> Iterator[None]:
        """Run a block of API calls, turning API and network failures into UserErrors.

        `doing` completes "cannot ...", e.g. "apply Deployment flux-system/source-controller". A 404 becomes
        `NotFound` (a UserError subclass) so callers can treat "missing" as an answer.
        """
        try:
            yield
        except UserError:
            raise
        except (ApiException, urllib3.exceptions.HTTPError, ssl.SSLError, ConnectionError) as error:
            raise self.translate(error, doing) from None
        except ValueError as error:
            # The discovery code raises ValueError for an http:// URL that needs https://.
            if "should start with https://" not in str(error):
                raise
            raise UserError(
                f"cannot {doing}: {self.server} speaks https",
                fix="change the cluster's server URL in the kubeconfig to https://",
            ) from None

    def translate(self, error: BaseException, doing: str) -> UserError:
        """The one-line UserError for an API or network failure while `doing` something."""
        if isinstance(error, ApiException):
            return self._api_error(error, doing)
        reason = getattr(error, "reason", None) or error
        text = str(reason)
        if isinstance(reason, urllib3.exceptions.SSLError | ssl.SSLError) or "CERTIFICATE_VERIFY_FAILED" in text:
            return UserError(
                f"cannot {doing}: the certificate of {self.server} is not trusted by the kubeconfig's "
                "certificate-authority",
                fix=f"get a current kubeconfig for context {self.context} ({AKS_CREDENTIALS} --overwrite-existing)",
            )
        if isinstance(reason, urllib3.exceptions.ConnectTimeoutError) and not isinstance(
            reason, urllib3.exceptions.NewConnectionError
        ):
            return UserError(
                f"cannot {doing}: {self.server} did not answer within {self.access.timeout:g}s",
                fix="check the network path to the cluster (a private AKS cluster is reachable only from its network)",
            )
        if isinstance(reason, urllib3.exceptions.ReadTimeoutError | TimeoutError):
            return UserError(
                f"cannot {doing}: {self.server} did not answer within {self.access.timeout:g}s",
                fix="check that the API server is healthy (kubectl get --raw /readyz), or raise --timeout",
            )
        refused = "refused" in text.lower()
        return UserError(
            f"cannot {doing}: cannot connect to {self.server}" + (" (connection refused)" if refused else ""),
            fix=f"check that the cluster is running and that context {self.context} points to it "
            "(kubectl cluster-info); for a private AKS cluster, run from a network that reaches it",
        )

    def _api_error(self, error: ApiException, doing: str) -> UserError:
        status = int(error.status or 0)
        message = _status_message(error)
        if status == 404:
            return NotFound(f"cannot {doing}: {message or 'not found'}")
        if status == 401:
            return UserError(
                f"cannot {doing}: {self.server} did not accept the credentials of context {self.context} "
                "(401 Unauthorized)",
                fix=f"refresh them ({AKS_CREDENTIALS} --overwrite-existing; with Entra ID, kubelogin "
                "convert-kubeconfig -l azurecli), or pass another --context",
            )
        if status == 403:
            match = _FORBIDDEN.search(message)
            if match:
                resource = match["resource"] + (f".{match['group']}" if match["group"] else "")
                need = f"{match['verb']} on {resource}"
            else:
                need = "the permission named above"
            return UserError(
                f"cannot {doing}: permission denied: {message or 'forbidden'}",
                fix=f"the credentials of context {self.context} need {need}: use a cluster-admin context or ask "
                "an administrator for a RoleBinding/ClusterRoleBinding",
            )
        detail = message or str(error.reason or "").strip() or "no message"
        return UserError(f"cannot {doing}: the API server answered {status}: {detail}")


class NotFound(UserError):
    """A 404 from the API server (callers that look for something optional catch it)."""


class UnknownKind(UserError):
    """Discovery does not list the kind (its CRD is missing, or not Established yet)."""


def _status_message(error: ApiException) -> str:
    """The `message` of a Kubernetes Status body, else the body itself (one line)."""
    body = error.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not body:
        return ""
    try:
        parsed = json.loads(body)
    except ValueError:
        return " ".join(str(body).split())[:300]
    if isinstance(parsed, dict) and parsed.get("message"):
        return " ".join(str(parsed["message"]).split())
    return " ".join(str(body).split())[:300]


# ---------------------------------------------------------------------------------------------- configuration


def _load_configuration(access: ClusterAccess) -> tuple[Any, str, str]:
    """A kubernetes client Configuration, the server URL and the context name (or "in-cluster")."""
    paths = _kubeconfig_paths(access.kubeconfig)
    configuration = kubernetes.client.Configuration()
    # At most one retry of a failed connection or read: the default (three retries) multiplies --timeout.
    configuration.retries = urllib3.Retry(total=2, connect=1, read=1, redirect=3, status=0)
    if not paths:
        if access.context:
            raise UserError(
                f"--context {access.context} needs a kubeconfig, and none was found",
                fix=f"pass --kubeconfig or set KUBECONFIG; for AKS: {AKS_CREDENTIALS}",
            )
        if not _in_cluster():
            raise UserError(
                "no kubeconfig found (not --kubeconfig, KUBECONFIG, ~/.kube/config) and not running in a cluster",
                fix=f"pass --kubeconfig or set KUBECONFIG; for AKS: {AKS_CREDENTIALS}",
            )
        try:
            kubernetes.config.load_incluster_config(client_configuration=configuration)
        except ConfigException as error:
            raise UserError(f"the in-cluster service account cannot be used: {error}") from None
        return configuration, str(configuration.host), "in-cluster"
    loader, context = _loader(paths, access.context)
    shown = os.pathsep.join(str(p) for p in paths)
    try:
        loader.load_and_set(configuration)
    except ConfigException as error:
        raise UserError(f"kubeconfig {shown} (context {context}) is invalid: {error}") from None
    except (OSError, ValueError) as error:
        raise UserError(f"kubeconfig {shown} (context {context}) cannot be used: {error}") from None
    user = getattr(loader, "_user", None)
    exec_config = user.safe_get("exec") if user is not None else None
    if exec_config and not configuration.api_key.get("BearerToken") and not configuration.cert_file:
        command = exec_config.get("command", "?") if isinstance(exec_config, dict) else "?"
        raise UserError(
            f"the credential plugin {command!r} of context {context} gave no credential",
            fix="check that it is installed and signed in (for AKS: az aks install-cli installs kubelogin; az login)",
        )
    if not configuration.verify_ssl and configuration.host.startswith("https"):
        # Only when the kubeconfig itself says insecure-skip-tls-verify: true, as kubectl does.
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    return configuration, str(configuration.host), context


def _kubeconfig_paths(explicit: Path | None) -> list[Path]:
    """The kubeconfig files to read, in kubectl's order of precedence (empty: try in-cluster)."""
    fix = f"pass --kubeconfig or set KUBECONFIG; for AKS: {AKS_CREDENTIALS}"
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise UserError(f"kubeconfig {path} does not exist", fix=fix)
        return [path]
    variable = os.environ.get("KUBECONFIG", "")
    if variable.strip():
        listed = [Path(p).expanduser() for p in variable.split(os.pathsep) if p.strip()]
        existing = [p for p in listed if p.is_file()]
        if not existing:
            raise UserError(f"none of the files in KUBECONFIG exists ({variable})", fix=fix)
        return existing
    default = Path("~/.kube/config").expanduser()
    return [default] if default.is_file() else []


def _in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and _IN_CLUSTER_TOKEN.is_file()


def _loader(paths: list[Path], context: str | None) -> tuple[Any, str]:
    """The client's loader for the merged files with the chosen context, after checking that context exists."""
    shown = os.pathsep.join(str(p) for p in paths)
    fix = f"pass --kubeconfig or set KUBECONFIG; for AKS: {AKS_CREDENTIALS}"
    current: str | None = None
    usable: list[Path] = []
    for path in paths:
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as error:
            raise UserError(f"cannot read kubeconfig {path}: {error}", fix=fix) from None
        except yaml.YAMLError as error:
            raise UserError(f"kubeconfig {path} is not valid YAML: {error}", fix=fix) from None
        if document is not None and not isinstance(document, dict):
            raise UserError(f"kubeconfig {path} is not a kubeconfig (a YAML mapping)", fix=fix)
        if not document:
            continue  # kubectl skips empty files; the client's merger would refuse them
        usable.append(path)
        if current is None and document.get("current-context"):
            # kubectl: the first file that sets current-context wins (the client's merger takes the last).
            current = str(document["current-context"])
    if not usable:
        raise UserError(f"kubeconfig {shown} is empty", fix=fix)
    try:
        merged = KubeConfigMerger(os.pathsep.join(str(p) for p in usable))
    except ConfigException as error:
        raise UserError(f"kubeconfig {shown} is invalid: {error}", fix=fix) from None
    config = merged.config
    names = [str(item["name"]) for item in config.value.get("contexts") or [] if "name" in item]
    wanted = context or current
    if not wanted:
        raise UserError(
            f"kubeconfig {shown} sets no current-context",
            fix=f"pass --context (one of: {', '.join(names) or 'none defined'})",
        )
    if wanted not in names:
        raise UserError(
            f"context {wanted!r} is not in kubeconfig {shown} (it has: {', '.join(names) or 'no contexts'})",
            fix=f"pass --context with one of those, or add it ({AKS_CREDENTIALS})",
        )
    config.value["current-context"] = wanted
    try:
        loader = KubeConfigLoader(config_dict=config, active_context=wanted, config_base_path=None)
    except ConfigException as error:
        raise UserError(f"context {wanted!r} in kubeconfig {shown} is invalid: {error}", fix=fix) from None
    return loader, wanted
