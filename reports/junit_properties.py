"""JUnit XML (pytest's `--junitxml`): each check's testcase names what it certifies.

pytest writes a testcase's `user_properties` as `<property>` elements, so each check gets one
`requirement` property per requirement ID, one `profile` per selected profile whose
requirements it covers, its `level` and its `outcome` (the suite's five-way verdict). The
check record itself travels as a report attribute and never reaches the XML.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from conformance.settings import RunSettings
from profiles import Profile


def covering_profiles(requirements: Iterable[str], profiles: Iterable[Profile]) -> list[str]:
    """The profiles (of those given) that certify at least one of `requirements`."""
    wanted = set(requirements)
    return [p.name for p in profiles if wanted & set(p.requirements)]


def junit_properties(record: dict[str, Any], profiles: Iterable[Profile]) -> list[tuple[str, str]]:
    properties = [("requirement", rid) for rid in record["requirements"]]
    properties += [
        ("profile", name) for name in covering_profiles(record["requirements"], profiles)
    ]
    properties += [("level", record["level"]), ("outcome", record["outcome"])]
    return properties


def default_junit_path(config: pytest.Config, settings: RunSettings) -> None:
    """With `--report-dir` and no `--junitxml`, write DIR/junit.xml (pytest's junitxml plugin
    reads the option in its own `pytest_configure`, after the suite's)."""
    if settings.report_dir is None or getattr(config.option, "xmlpath", "absent") is not None:
        return
    if settings.report_formats and "junit" not in settings.report_formats:
        return
    config.option.xmlpath = str(settings.report_dir / "junit.xml")
