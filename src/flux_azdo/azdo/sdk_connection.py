"""The SDK's `Connection`, set up so that every request it sends follows our settings.

`Connection` builds each SDK client with its own msrest configuration (`connection.py` `_get_client_instance`)
and looks up resource areas through a private `LocationClient` of its own, with msrest's defaults (100 s
timeout, retries on 5xx with up to 90 s of backoff, no hook). `ConfiguredConnection` hands every client it
creates to a `configure` callback (timeout, retry policy, reply hook: `ClientSettings.apply`) and routes the
resource-area lookup through such a client, so no request escapes the settings.

msrest's `BasicTokenAuthentication` lets requests replace a bearer token with ~/.netrc credentials; the bearer
class here closes that hole.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flux_azdo.azdo.credentials import AzureDevOpsToken
from flux_azdo.azdo.retry import BoundedRetry, RepeatablePosts

_LOCATION_V7_1 = "azure.devops.v7_1.location.location_client.LocationClient"


@dataclass(frozen=True)
class ClientSettings:
    """What every SDK client of one `AzureDevOpsClient` gets: the timeout (seconds, connect and read), the bounded
    retry policy and a requests response hook (the client records the last reply with it)."""

    timeout: float
    retries: int
    max_retry_after: float
    repeatable: RepeatablePosts
    hook: Callable[..., Any]

    def apply(self, client: Any) -> None:
        """Timeout, retry policy and the reply hook for one SDK client, through its msrest configuration.

        msrest hands `retry_policy.policy` to requests' adapters when it starts a session, but the SDK client's
        first session starts in its constructor, before we get the client. So the policy is also put on the
        adapters of whatever session a request uses, from the per-request `session_configuration_callback`.
        """
        config = client.config
        retry = BoundedRetry.create(self.retries, self.max_retry_after, self.repeatable)
        config.connection.timeout = self.timeout
        config.retry_policy.policy = retry

        def use_our_retry(session: Any, global_config: Any, local_config: Any, **kwargs: Any) -> dict[str, Any]:
            for prefix in ("http://", "https://"):
                adapter = session.adapters.get(prefix)
                if adapter is not None and adapter.max_retries is not retry:
                    adapter.max_retries = retry
            return kwargs

        config.session_configuration_callback = use_our_retry
        config.hooks.append(self.hook)


def open_connection(
    collection_url: str, token: AzureDevOpsToken, *, user_agent: str, configure: Callable[[Any], None]
) -> Any:
    """A `Connection` to `collection_url` that authenticates with `token` and passes each new client to
    `configure`. No I/O happens here: the first call through a client asks the server for its locations."""
    from msrest.authentication import BasicAuthentication

    creds: Any
    if token.scheme == "bearer":
        creds = bearer_class()({"access_token": token.secret})
    else:
        creds = BasicAuthentication("", token.secret)
    return connection_class()(configure, base_url=collection_url, creds=creds, user_agent=user_agent)


def close_client(client: Any) -> None:
    """Close the HTTP session of one SDK client (msrest keeps it open for the client's life)."""
    with contextlib.suppress(Exception):
        client.config.pipeline.__exit__()


@functools.cache
def connection_class() -> type[Any]:
    """`Connection` that configures every SDK client it creates (built lazily: the SDK is imported on first use)."""
    from azure.devops import _file_cache
    from azure.devops.connection import Connection

    class ConfiguredConnection(Connection):  # type: ignore[misc]
        _resource_areas: Any

        def __init__(self, configure: Callable[[Any], None], **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._configure = configure

        def _get_client_instance(self, client_class: Any) -> Any:
            client = super()._get_client_instance(client_class)
            self._configure(client)
            return client

        def _get_resource_areas(self, force: bool = False) -> Any:
            # The SDK would ask through a LocationClient of its own, with msrest's defaults; ask through a
            # configured one instead, and store the answer in the disk cache in the SDK's format. A cache hit is
            # served by the SDK's code below.
            if self._resource_areas is None and not force:
                key = self.base_url.rstrip("/").lower()
                if not _file_cache.RESOURCE_CACHE.get(key):
                    areas = self.get_client(_LOCATION_V7_1).get_resource_areas() or []
                    self._resource_areas = areas
                    with contextlib.suppress(Exception):  # a cache that cannot be written costs one request
                        _file_cache.RESOURCE_CACHE[key] = [area.serialize() for area in areas]
            return super()._get_resource_areas(force)

    return ConfiguredConnection


@functools.cache
def bearer_class() -> type[Any]:
    """msrest's `BasicTokenAuthentication`, with the header set by a requests `auth` object instead.

    The original puts `Authorization: Bearer` into the session's headers and leaves `session.auth` empty, and
    requests then fills in credentials from ~/.netrc (or $NETRC) for the host, replacing the bearer token with
    whatever PAT a git user keeps there. With `session.auth` set, requests never looks at netrc.
    """
    import requests
    from msrest.authentication import BasicTokenAuthentication

    class Bearer(requests.auth.AuthBase):
        def __init__(self, token: str) -> None:
            self._token = token

        def __repr__(self) -> str:
            return "Bearer(***)"

        def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
            request.headers["Authorization"] = f"Bearer {self._token}"
            return request

    class BearerTokenAuthentication(BasicTokenAuthentication):
        def signed_session(self, session: requests.Session | None = None) -> requests.Session:
            session = super().signed_session(session)
            session.headers.pop("Authorization", None)
            session.auth = Bearer(self.token["access_token"])
            return session

    return BearerTokenAuthentication
