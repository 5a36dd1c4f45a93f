"""The requirement catalogue: every requirement the suite can certify, as data.

One TOML file per area sits beside this module. Checks name requirement IDs, profiles select
them and reports render them; `load_catalogue()` is the one place that reads the files.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal

Level = Literal["MUST", "SHOULD", "MAY"]
LEVELS: tuple[Level, ...] = ("MUST", "SHOULD", "MAY")
COMPONENTS = ("AS", "RS", "IDP", "EXCH", "ALL")
_KEYS = {"id", "level", "component", "title", "summary", "versions", "refs", "note"}
_REQUIRED = _KEYS - {"note"}


class CatalogueError(ValueError):
    """The catalogue data is malformed (a bug in the suite, never in the target)."""


@dataclass(frozen=True)
class SpecRef:
    spec: str
    section: str
    url: str

    def __str__(self) -> str:
        return f"{self.spec} §{self.section}"


@dataclass(frozen=True)
class Requirement:
    id: str
    level: Level
    component: str
    title: str
    summary: str
    versions: tuple[str, ...]
    refs: tuple[SpecRef, ...]
    note: str = ""

    @property
    def spec_reference(self) -> str:
        return "; ".join(str(ref) for ref in self.refs)


def _parse(entry: dict[str, object], source: str) -> Requirement:
    keys = set(entry)
    if missing := _REQUIRED - keys:
        raise CatalogueError(f"{source}: {entry.get('id', '?')} lacks {sorted(missing)}")
    if unknown := keys - _KEYS:
        raise CatalogueError(f"{source}: {entry['id']} has unknown keys {sorted(unknown)}")
    if entry["level"] not in LEVELS:
        raise CatalogueError(f"{source}: {entry['id']} has level {entry['level']!r}")
    if entry["component"] not in COMPONENTS:
        raise CatalogueError(f"{source}: {entry['id']} has component {entry['component']!r}")
    refs = entry["refs"]
    assert isinstance(refs, list) and refs, f"{source}: {entry['id']} needs refs"
    return Requirement(
        id=str(entry["id"]),
        level=entry["level"],  # type: ignore[arg-type]
        component=str(entry["component"]),
        title=str(entry["title"]),
        summary=str(entry["summary"]),
        versions=tuple(entry["versions"]),  # type: ignore[arg-type]
        refs=tuple(SpecRef(r["spec"], str(r["section"]), r["url"]) for r in refs),
        note=str(entry.get("note", "")),
    )


@cache
def load_catalogue() -> dict[str, Requirement]:
    """All catalogued requirements by ID, in file order."""
    catalogue: dict[str, Requirement] = {}
    for file in sorted(resources.files(__name__).iterdir(), key=lambda f: f.name):
        if not file.name.endswith(".toml"):
            continue
        for entry in tomllib.loads(file.read_text("utf-8")).get("requirement", []):
            requirement = _parse(entry, file.name)
            if requirement.id in catalogue:
                raise CatalogueError(f"{file.name}: duplicate requirement {requirement.id}")
            catalogue[requirement.id] = requirement
    return catalogue
