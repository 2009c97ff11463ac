"""The PAT scopes a bootstrap needs, with the names a person sees when creating or editing a PAT.

The API speaks of `vso.code_write`; the PAT list shows "Code (Read & write)" and the "New Token" dialog has the
radio button "Read & write" in the "Code" row under "Custom defined". Every message and fix that names a scope
takes the names from this one table, so they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class PatScope:
    """One PAT scope: `name` as the API and TF400813 name it, `label` as the PAT list shows it, and `checkbox`, the
    path to the option in the "New Token" / "Edit" dialog."""

    name: str
    label: str
    checkbox: tuple[str, ...]

    @property
    def checkbox_path(self) -> str:
        """`Custom defined > Code > Read & write`: what to click, in order."""
        return " > ".join(self.checkbox)

    @property
    def described(self) -> str:
        """`Code (Read & write) (vso.code_write)`: the name people look for, then the one the API prints."""
        return f"{self.label} ({self.name})"


def _scope(name: str, label: str, area: str, option: str) -> PatScope:
    return PatScope(name, label, ("Custom defined", area, option))


#: The scopes a bootstrap can need; `vso.code_manage` includes `vso.code_write`, which includes `vso.code`.
PAT_SCOPES: Mapping[str, PatScope] = MappingProxyType(
    {
        scope.name: scope
        for scope in (
            _scope("vso.project", "Project and Team (Read)", "Project and Team", "Read"),
            _scope("vso.code", "Code (Read)", "Code", "Read"),
            _scope("vso.code_write", "Code (Read & write)", "Code", "Read & write"),
            _scope("vso.code_manage", "Code (Read, write, & manage)", "Code", "Read, write, & manage"),
        )
    }
)


def pat_scope(name: str) -> PatScope:
    """The scope called `name`; one we do not know is described by its API name alone."""
    known = PAT_SCOPES.get(name)
    return known if known is not None else PatScope(name, name, ("Custom defined", name))
