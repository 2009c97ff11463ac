"""Bearer-token users, RBAC-style rules, and the answers the authorizer gives (403s and access reviews).

A user is a name, groups and a list of `AccessRule`s; the admin belongs to `system:masters` and may do anything.
Every request is authorized before it is served, with the real `Forbidden` text, and SelfSubjectAccessReview /
SelfSubjectRulesReview answer from the same rules, so a test can model a user without cluster-admin and see
both `kubectl auth can-i` and a failing write agree.

Tokens the server did not issue can be accepted by an external authenticator (`TokenAuthenticator`), the way
AKS's webhook token authentication accepts Microsoft Entra tokens: it names the user and its groups, and the
rules come from `Users.bind`, which gives rules (or cluster-admin) to a user name or group without a token, as a
(Cluster)RoleBinding does.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from flux_azdo.sandbox.kube.errors import bad_request, forbidden, unauthorized


@dataclass(frozen=True)
class AccessRule:
    """One RBAC PolicyRule: `*` matches anything; empty `namespaces` means every namespace and cluster scope.

    `resources` may name subresources as `deployments/status`; `resource_names` limits the rule to named objects.
    """

    verbs: Sequence[str]
    api_groups: Sequence[str] = ("*",)
    resources: Sequence[str] = ("*",)
    namespaces: Sequence[str] = ()
    resource_names: Sequence[str] = ()

    def allows(self, attributes: Attributes) -> bool:
        if not _matches(self.verbs, attributes.verb):
            return False
        if not _matches(self.api_groups, attributes.group):
            return False
        resource = attributes.resource + (f"/{attributes.subresource}" if attributes.subresource else "")
        if not (
            _matches(self.resources, resource)
            or (attributes.subresource and f"{attributes.resource}/*" in self.resources)
            or (attributes.subresource and f"*/{attributes.subresource}" in self.resources)
        ):
            return False
        if self.namespaces and attributes.namespace not in self.namespaces and "*" not in self.namespaces:
            return False
        return not (self.resource_names and (not attributes.name or attributes.name not in self.resource_names))


def _matches(allowed: Sequence[str], value: str) -> bool:
    return "*" in allowed or value in allowed


@dataclass(frozen=True)
class Attributes:
    """What a request does, as the authorizer sees it."""

    verb: str
    group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""

    @property
    def is_resource(self) -> bool:
        return bool(self.resource)


@dataclass
class User:
    name: str
    groups: tuple[str, ...]
    rules: tuple[AccessRule, ...] = ()
    uid: str = field(default_factory=lambda: secrets.token_hex(8))
    #: Bound to the cluster-admin ClusterRole (may do anything, like system:masters, without that group).
    cluster_admin: bool = False

    @property
    def admin(self) -> bool:
        return self.cluster_admin or "system:masters" in self.groups


#: `token -> (user name, groups)` for a token the authenticator accepts, else None (then the request is a 401).
TokenAuthenticator = Callable[[str], tuple[str, Sequence[str]] | None]


#: Paths every authenticated user may read (the system:discovery and system:public-info-viewer roles).
PUBLIC_PATHS = ("/api", "/apis", "/version", "/openapi", "/healthz", "/livez", "/readyz")


def _public(path: str) -> bool:
    return any(path == prefix or path.startswith(prefix + "/") for prefix in PUBLIC_PATHS)


class Users:
    """Bearer tokens and the users they stand for.

    `insecure_is_admin` models kube-apiserver's old plain-HTTP `--insecure-port`, which skipped authentication and
    authorisation: client-go (so kubectl) never sends a bearer token over plain http, so a token-only http server
    would be unusable with kubectl. A request that does carry a token is still that token's user.
    """

    def __init__(
        self, *, insecure_is_admin: bool = False, token_authenticator: TokenAuthenticator | None = None
    ) -> None:
        self._lock = threading.Lock()
        self._by_token: dict[str, User] = {}
        self.admin_token = secrets.token_urlsafe(32)
        self._admin = User("sandbox-admin", ("system:masters", "system:authenticated"))
        self._by_token[self.admin_token] = self._admin
        self._insecure_is_admin = insecure_is_admin
        self.token_authenticator = token_authenticator
        # user name or group -> (rules, cluster-admin): the bindings external users get their rights from
        self._bindings: dict[str, tuple[tuple[AccessRule, ...], bool]] = {}

    def add(self, name: str, rules: Sequence[AccessRule]) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._by_token[token] = User(name, ("system:authenticated",), tuple(rules))
        return token

    def bind(self, subject: str, rules: Sequence[AccessRule] = (), *, cluster_admin: bool = False) -> None:
        """Give `rules` (added to earlier ones) or cluster-admin to a user name or group, without a token.

        Users named by the external authenticator get the rights bound to their name and to each of their groups.
        """
        with self._lock:
            old_rules, old_admin = self._bindings.get(subject, ((), False))
            self._bindings[subject] = (old_rules + tuple(rules), old_admin or cluster_admin)

    def _external_user(self, token: str) -> User | None:
        authenticator = self.token_authenticator
        if authenticator is None:
            return None
        found = authenticator(token)
        if found is None:
            return None
        name, groups = found
        subjects = [name, *groups]
        rules: tuple[AccessRule, ...] = ()
        admin = False
        with self._lock:
            for subject in subjects:
                bound_rules, bound_admin = self._bindings.get(subject, ((), False))
                rules += bound_rules
                admin = admin or bound_admin
        all_groups = tuple(dict.fromkeys([*groups, "system:authenticated"]))
        return User(name, all_groups, rules, uid=name, cluster_admin=admin)

    def authenticate(self, header: str | None) -> User:
        if not header and self._insecure_is_admin:
            return self._admin
        if not header or not header.startswith("Bearer "):
            raise unauthorized()
        token = header[len("Bearer ") :].strip()
        with self._lock:
            user = self._by_token.get(token)
        if user is None:
            user = self._external_user(token)
        if user is None:
            raise unauthorized()
        return user


def allowed(user: User, attributes: Attributes) -> bool:
    if user.admin:
        return True
    if not attributes.is_resource:
        return _public(attributes.path)
    if (attributes.group, attributes.resource) in (
        ("authorization.k8s.io", "selfsubjectaccessreviews"),
        ("authorization.k8s.io", "selfsubjectrulesreviews"),
        ("authentication.k8s.io", "selfsubjectreviews"),
    ):
        return True  # system:basic-user
    return any(rule.allows(attributes) for rule in user.rules)


def forbidden_message(user: User, attributes: Attributes) -> str:
    if not attributes.is_resource:
        return f'User "{user.name}" cannot {attributes.verb} path "{attributes.path}"'
    resource = attributes.resource + (f"/{attributes.subresource}" if attributes.subresource else "")
    where = f'in the namespace "{attributes.namespace}"' if attributes.namespace else "at the cluster scope"
    return (
        f'User "{user.name}" cannot {attributes.verb} resource "{resource}" in API group "{attributes.group}" {where}'
    )


def authorize(user: User, attributes: Attributes) -> None:
    if allowed(user, attributes):
        return
    message = forbidden_message(user, attributes)
    if not attributes.is_resource:
        raise forbidden("", "", "", message)
    raise forbidden(attributes.group, attributes.resource, attributes.name, message)


def access_review(user: User, body: dict[str, Any]) -> dict[str, Any]:
    """The SelfSubjectAccessReview answer: the spec echoed, `status.allowed` from the user's rules."""
    spec = body.get("spec") or {}
    resource = spec.get("resourceAttributes")
    non_resource = spec.get("nonResourceAttributes")
    if isinstance(resource, dict):
        attributes = Attributes(
            verb=str(resource.get("verb", "")),
            group=str(resource.get("group", "")),
            resource=str(resource.get("resource", "")),
            subresource=str(resource.get("subresource", "")),
            namespace=str(resource.get("namespace", "")),
            name=str(resource.get("name", "")),
        )
    elif isinstance(non_resource, dict):
        attributes = Attributes(verb=str(non_resource.get("verb", "")), path=str(non_resource.get("path", "")))
    else:
        attributes = Attributes(verb="")
    verdict = allowed(user, attributes) if attributes.verb else False
    status: dict[str, Any] = {"allowed": verdict}
    if verdict and not user.admin:
        status["reason"] = (
            f'RBAC: allowed by RoleBinding "sandbox-{user.name}" of Role "sandbox-{user.name}" to User "{user.name}"'
        )
    return _answer("SelfSubjectAccessReview", body, spec, status)


def _answer(kind: str, body: dict[str, Any], spec: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    """A review as the apiserver returns it: the request's metadata (never stored: no creationTimestamp), the
    spec echoed, and the computed status."""
    metadata = dict(body.get("metadata") or {})
    metadata["creationTimestamp"] = None
    return {"kind": kind, "apiVersion": "authorization.k8s.io/v1", "metadata": metadata, "spec": spec, "status": status}


def rules_review(user: User, body: dict[str, Any]) -> dict[str, Any]:
    """The SelfSubjectRulesReview answer (`kubectl auth can-i --list`); rules are always per namespace."""
    spec = body.get("spec") or {}
    namespace = str(spec.get("namespace", "") or "")
    if not namespace:
        raise bad_request("no namespace on request")
    if user.admin:
        resource_rules = [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]
        non_resource_rules = [{"verbs": ["*"], "nonResourceURLs": ["*"]}]
    else:
        resource_rules = [
            {
                "verbs": ["create"],
                "apiGroups": ["authorization.k8s.io"],
                "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
            }
        ]
        for rule in user.rules:
            if rule.namespaces and namespace not in rule.namespaces and "*" not in rule.namespaces:
                continue
            entry: dict[str, Any] = {
                "verbs": list(rule.verbs),
                "apiGroups": list(rule.api_groups),
                "resources": list(rule.resources),
            }
            if rule.resource_names:
                entry["resourceNames"] = list(rule.resource_names)
            resource_rules.append(entry)
        non_resource_rules = [
            {"verbs": ["get"], "nonResourceURLs": [path + suffix for path in PUBLIC_PATHS for suffix in ("", "/*")]}
        ]
    status = {"resourceRules": resource_rules, "nonResourceRules": non_resource_rules, "incomplete": False}
    return _answer("SelfSubjectRulesReview", body, spec, status)


def self_review(user: User) -> dict[str, Any]:
    """The SelfSubjectReview answer (`kubectl auth whoami`)."""
    return {
        "kind": "SelfSubjectReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "status": {"userInfo": {"username": user.name, "uid": user.uid, "groups": list(user.groups)}},
    }
