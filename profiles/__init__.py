"""Profiles: named sets of requirements a deployment is certified against (data beside this)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

from conformance.catalogue import LEVELS, CatalogueError, Level, load_catalogue

_KEYS = {"name", "title", "description", "requirements", "levels", "strict"}


@dataclass(frozen=True)
class Profile:
    name: str
    title: str
    description: str
    requirements: tuple[str, ...]
    levels: dict[str, Level] = field(default_factory=dict)
    strict: bool = False  # every SHOULD is certified as a MUST

    def level_of(self, requirement_id: str) -> Level:
        """The level this profile certifies a requirement at (its own, or the catalogue's)."""
        level = self.levels.get(requirement_id) or load_catalogue()[requirement_id].level
        return "MUST" if self.strict and level == "SHOULD" else level


def _parse(data: dict[str, object], source: str) -> Profile:
    if unknown := set(data) - _KEYS:
        raise CatalogueError(f"profile {source}: unknown keys {sorted(unknown)}")
    catalogue = load_catalogue()
    requirements: tuple[str, ...] = tuple(data["requirements"])  # type: ignore[arg-type]
    levels = dict(data.get("levels", {}))  # type: ignore[call-overload]
    for rid in (*requirements, *levels):
        if rid not in catalogue:
            raise CatalogueError(f"profile {source}: unknown requirement {rid}")
    for rid, level in levels.items():
        if level not in LEVELS:
            raise CatalogueError(f"profile {source}: {rid} has level {level!r}")
    return Profile(
        name=str(data["name"]),
        title=str(data["title"]),
        description=str(data["description"]),
        requirements=requirements,
        levels=levels,
        strict=bool(data.get("strict", False)),
    )


@cache
def load_profiles() -> dict[str, Profile]:
    """All bundled profiles by name, sorted by name."""
    profiles: dict[str, Profile] = {}
    for file in sorted(resources.files(__name__).iterdir(), key=lambda f: f.name):
        if file.name.endswith(".toml"):
            profile = _parse(tomllib.loads(file.read_text("utf-8")), file.name)
            profiles[profile.name] = profile
    return profiles
