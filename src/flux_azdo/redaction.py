"""URLs made safe to print: people paste PATs into clone URLs, as a password or as the whole user name.

`https://user:<PAT>@host/...` and `https://<PAT>@dev.azure.com/...` both authenticate with git, so both must be
hidden before a URL reaches a message, a report or a log. A user name is kept only where it cannot be a secret:
next to a password (the password is the secret then), on SSH (the account name, e.g. `git`), or when it repeats a
name that is in the URL anyway (the clone dialog's `https://<org>@dev.azure.com/<org>/...`).
"""

from __future__ import annotations

import re

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_HIDDEN = "***"


def redact_url(url: str) -> str:
    text = url.strip()
    match = _SCHEME.match(text)
    scheme = match.group(1).lower() if match else ""
    prefix = match.group(0) if match else ""
    rest = text[len(prefix) :]
    end = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    # The user info ends at the last '@' of the authority, as Go and urllib read it: a password holding '@' is
    # hidden whole.
    userinfo, at, hostport = authority.rpartition("@")
    if not at:
        return text
    user, colon, _ = userinfo.partition(":")
    if colon:
        return f"{prefix}{user}:{_HIDDEN}@{hostport}{tail}"
    if scheme in ("http", "https") and not _repeats_a_name(user, hostport, tail):
        return f"{prefix}{_HIDDEN}@{hostport}{tail}"
    return text


def _repeats_a_name(user: str, hostport: str, tail: str) -> bool:
    """`https://contoso@dev.azure.com/contoso/...` or `https://contoso@contoso.visualstudio.com/...`."""
    if not user:
        return False
    names = {segment.lower() for segment in tail.split("?")[0].split("/") if segment}
    names.add(hostport.split(".")[0].lower())
    return user.lower() in names
