"""The validated command line of one run, kept in `config.stash`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conformance.baseline import Baseline
from conformance.config import TargetConfig


@dataclass(frozen=True)
class RunSettings:
    target: str
    config: TargetConfig
    profiles: tuple[str, ...]
    report_dir: Path | None
    defects: frozenset[str] = field(default_factory=frozenset)
    report_formats: tuple[str, ...] = ()  # empty: every format
    baseline: Baseline | None = None  # expected failures (`--baseline`)

    @property
    def embedded(self) -> bool:
        return self.target == "embedded"

    @property
    def mcp_url(self) -> str | None:
        return None if self.embedded else self.target


RUN_SETTINGS = pytest.StashKey[RunSettings]()
