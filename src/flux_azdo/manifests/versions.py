"""Flux release versions, compared with semantic-versioning precedence.

Flux versions are `vMAJOR.MINOR.PATCH[-PRERELEASE]`; features appeared in specific
releases, so several generators need to order versions (v2.0.0-rc.5 < v2.0.0 < v2.7.0).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from flux_azdo.errors import UserError

_SEMVER = re.compile(
    r"^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z.-]+)?$"
)


@dataclass(frozen=True)
class FluxVersion:
    """A parsed `vX.Y.Z[-pre]`; ordering follows semver 2.0 precedence rules."""

    text: str
    major: int = field(compare=False)
    minor: int = field(compare=False)
    patch: int = field(compare=False)
    prerelease: tuple[str, ...] = field(compare=False, default=())

    @classmethod
    def parse(cls, text: str) -> FluxVersion:
        match = _SEMVER.match(text)
        if match is None:
            if _SEMVER.match("v" + text):
                raise UserError(f"version {text!r} must be prefixed with 'v': use --version v{text}")
            raise UserError(f"version {text!r} is not a Flux release version: use the form v2.6.4 or 'latest'")
        pre = tuple(match.group(4).split(".")) if match.group(4) else ()
        return cls(text, int(match.group(1)), int(match.group(2)), int(match.group(3)), pre)

    def _key(self) -> tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]:
        # A release sorts after all of its pre-releases; numeric identifiers sort
        # numerically and before alphanumeric ones (semver 2.0, section 11).
        pre = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.prerelease)
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, pre)

    def __lt__(self, other: FluxVersion) -> bool:
        return self._key() < other._key()

    def __le__(self, other: FluxVersion) -> bool:
        return self._key() <= other._key()

    def __gt__(self, other: FluxVersion) -> bool:
        return self._key() > other._key()

    def __ge__(self, other: FluxVersion) -> bool:
        return self._key() >= other._key()

    @property
    def is_release(self) -> bool:
        return not self.prerelease

    def __str__(self) -> str:
        return self.text


def is_version_text(text: str) -> bool:
    return _SEMVER.match(text) is not None
