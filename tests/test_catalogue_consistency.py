"""Catalogue, checks, profiles and defects agree: no unknown ID anywhere, nothing unproven."""

from __future__ import annotations

from conformance.catalogue import load_catalogue
from profiles import load_profiles
from reference.defects import DEFECTS
from tests.check_index import check_requirements

CATALOGUE = load_catalogue()
CHECKS = check_requirements()
CHECKED = {rid for ids in CHECKS.values() for rid in ids}


def test_every_check_names_catalogued_requirements() -> None:
    assert CHECKS
    bad = {
        check: ids
        for check, ids in CHECKS.items()
        if not ids or any(rid not in CATALOGUE for rid in ids)
    }
    assert not bad


def test_every_profile_requirement_has_a_check() -> None:
    unchecked = {
        name: sorted(set(profile.requirements) - CHECKED)
        for name, profile in load_profiles().items()
        if set(profile.requirements) - CHECKED
    }
    assert not unchecked


def test_every_catalogued_requirement_is_in_a_profile() -> None:
    profiled = {rid for p in load_profiles().values() for rid in p.requirements}
    assert sorted(set(CATALOGUE) - profiled) == []


def test_every_checked_requirement_has_a_defect_that_breaks_it() -> None:
    broken = {rid for d in DEFECTS.values() for rid in d.requirements}
    assert sorted(CHECKED - broken) == []


def test_every_defect_names_catalogued_and_checked_requirements() -> None:
    for defect in DEFECTS.values():
        assert defect.requirements, defect.name
        assert set(defect.requirements) <= CHECKED, defect.name
        assert set(defect.masks) - {"*"} <= set(CATALOGUE), defect.name


def test_every_requirement_cites_a_spec_section_with_a_link() -> None:
    for requirement in CATALOGUE.values():
        assert requirement.refs, requirement.id
        for ref in requirement.refs:
            assert ref.section and ref.url.startswith("https://"), requirement.id


def test_strict_profile_certifies_every_requirement_as_must() -> None:
    strict = load_profiles()["mcp-strict"]
    assert set(strict.requirements) == set(CATALOGUE)
    assert {strict.level_of(rid) for rid in CATALOGUE} <= {"MUST", "MAY"}
