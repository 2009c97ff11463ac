"""The simulator's only way into the cluster: plain Kubernetes API calls through the `kubernetes` client.

Objects travel as JSON dictionaries (`_preload_content=False`), never as the client's models, so nothing the
server sends is dropped and custom resources need no generated classes. Every path is a public API path, so the
same code drives the sandbox's API server or a real one.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote

from kubernetes import client as kube_client
from kubernetes import config as kube_config
from kubernetes.client.exceptions import ApiException

JSON = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"


#: `KubeError.reason` when no answer came at all (connection refused or reset, timeout, a broken body).
UNREACHABLE = "Unreachable"


class KubeError(Exception):
    """A failed API call, with the Status object's fields (`reason` such as NotFound, Conflict, Expired).

    Transport failures are KubeErrors too (status 0, reason `Unreachable`), so every caller handles "the server
    is gone or restarting" the way it handles a server error: retry later, never crash its thread.
    """

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def unreachable(self) -> bool:
        return self.reason == UNREACHABLE


def _unreachable(error: Exception) -> KubeError:
    return KubeError(0, UNREACHABLE, f"{type(error).__name__}: {error}")


def _error_from(exc: ApiException) -> KubeError:
    status = int(exc.status or 0)
    reason = str(exc.reason or "")
    message = reason
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str) and body:
        try:
            document = json.loads(body)
        except ValueError:
            message = body.strip() or reason
        else:
            if isinstance(document, dict):
                message = str(document.get("message") or reason)
                reason = str(document.get("reason") or reason)
    return KubeError(status, reason, message)


def resource_path(api_version: str, plural: str, namespace: str | None = None, name: str | None = None) -> str:
    """`/api/v1/namespaces/ns/pods/name` or `/apis/group/version/...` for a resource (cluster-wide if no ns)."""
    prefix = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    path = prefix
    if namespace is not None:
        path += f"/namespaces/{quote(namespace, safe='')}"
    path += f"/{plural}"
    if name is not None:
        path += f"/{quote(name, safe='')}"
    return path


class Cluster:
    """A thread-safe handle on one API server, built from a kubeconfig file (current context)."""

    def __init__(self, kubeconfig: Path) -> None:
        configuration = kube_client.Configuration()
        kube_config.load_kube_config(
            config_file=str(kubeconfig), client_configuration=configuration, persist_config=False
        )
        # Watches hold connections open; leave room for the workers next to them.
        configuration.connection_pool_maxsize = 32
        self._api = kube_client.ApiClient(configuration)
        self._lock = threading.Lock()
        self._closed = False

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._api.rest_client.pool_manager.clear()
        self._api.close()

    # -- raw calls ----------------------------------------------------------------------------------------------

    def open(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | tuple[float, float] | None = 30.0,
    ) -> Any:
        """Send one request and return the unread urllib3 response (watches read it as a stream)."""
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        try:
            return self._api.call_api(
                path,
                method,
                query_params=query or [],
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
                _preload_content=False,
                _request_timeout=timeout,
            )
        except ApiException as exc:
            raise _error_from(exc) from None
        except Exception as exc:  # urllib3's MaxRetryError, ProtocolError, timeouts: nothing was answered
            raise _unreachable(exc) from None

    # -- conveniences -------------------------------------------------------------------------------------------

    def get(self, path: str) -> JSON | None:
        """The object, or None when it does not exist."""
        try:
            return _document(self.open("GET", path))
        except KubeError as error:
            if error.not_found:
                return None
            raise

    def list(self, path: str, *, label_selector: str | None = None) -> JSON:
        query = [("labelSelector", label_selector)] if label_selector else None
        return _document(self.open("GET", path, query=query))

    def create(self, path: str, body: JSON) -> JSON:
        return _document(self.open("POST", path, body=body))

    def merge_patch(self, path: str, patch: JSON) -> JSON:
        return _document(self.open("PATCH", path, body=patch, content_type=MERGE_PATCH))

    def delete(self, path: str) -> None:
        try:
            _document(self.open("DELETE", path))
        except KubeError as error:
            if not error.not_found:
                raise


def _document(response: Any) -> JSON:
    """Read a whole response as one JSON object and hand the connection back to the pool."""
    try:
        data = response.data
        document = json.loads(data) if data else {}
    except Exception as exc:  # the connection broke mid-body, or a proxy answered with something else than JSON
        raise _unreachable(exc) from None
    finally:
        response.release_conn()
    return document if isinstance(document, dict) else {}
