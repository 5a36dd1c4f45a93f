"""Which requirement IDs each bundled check declares, read from the check modules themselves."""

from __future__ import annotations

import importlib
import pkgutil

import conformance.checks


def check_requirements() -> dict[str, tuple[str, ...]]:
    """`module::function` -> the requirement IDs its `requirement` markers name."""
    index: dict[str, tuple[str, ...]] = {}
    for info in pkgutil.walk_packages(conformance.checks.__path__, "conformance.checks."):
        if not info.name.rsplit(".", 1)[-1].startswith("test_"):
            continue
        module = importlib.import_module(info.name)
        for name, function in vars(module).items():
            if name.startswith("test_") and callable(function):
                marks = [m for m in getattr(function, "pytestmark", []) if m.name == "requirement"]
                index[f"{info.name}::{name}"] = tuple(a for m in marks for a in m.args)
    return index
