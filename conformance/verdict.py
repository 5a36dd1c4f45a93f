"""What a check found, per requirement, and the outcome that follows from it.

A check declares the requirements it proves (`@pytest.mark.requirement(...)`) and records
findings with `Verdict.expect`. The level that decides between `failed` and `warning` is not
chosen in the check: it comes from the catalogue, or from the profile being certified.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from conformance.catalogue import Level, load_catalogue
from conformance.errors import PreconditionFailed
from conformance.evidence import Exchange


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    WARNING = "warning"
    SKIPPED = "skipped"
    ERROR = "error"


class Status(StrEnum):
    """What was observed about one requirement, before a level turns it into an outcome."""

    SATISFIED = "satisfied"
    TOLERATED = "tolerated"  # held, but only in a variant the spec tolerates (e.g. error code)
    VIOLATED = "violated"
    SKIPPED = "skipped"
    ERROR = "error"


# Worst first: combining several observations of one requirement keeps the worst.
_STATUS_ORDER = (
    Status.VIOLATED,
    Status.ERROR,
    Status.TOLERATED,
    Status.SATISFIED,
    Status.SKIPPED,
)
_OUTCOME_ORDER = (Outcome.FAILED, Outcome.ERROR, Outcome.WARNING, Outcome.PASSED, Outcome.SKIPPED)


def worst_status(statuses: list[Status]) -> Status:
    return min(statuses, key=_STATUS_ORDER.index) if statuses else Status.SKIPPED


def worst_outcome(outcomes: list[Outcome]) -> Outcome:
    return min(outcomes, key=_OUTCOME_ORDER.index) if outcomes else Outcome.SKIPPED


def outcome_for(status: Status, level: Level, strict: bool = False) -> Outcome:
    """A violated MUST fails; a violated SHOULD or MAY warns; a tolerated variant warns
    (and fails under a strict profile, which takes the strict reading everywhere)."""
    if status is Status.VIOLATED:
        return Outcome.FAILED if level == "MUST" else Outcome.WARNING
    if status is Status.TOLERATED:
        return Outcome.FAILED if strict else Outcome.WARNING
    return {
        Status.SATISFIED: Outcome.PASSED,
        Status.SKIPPED: Outcome.SKIPPED,
        Status.ERROR: Outcome.ERROR,
    }[status]


@dataclass
class Finding:
    requirement: str
    satisfied: bool
    message: str
    tolerated: bool = False


@dataclass
class Verdict:
    """Collects findings and evidence for one check."""

    requirements: tuple[str, ...]
    findings: list[Finding] = field(default_factory=list)
    evidence: list[Exchange] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def expect(self, requirement: str, condition: object, message: str) -> bool:
        """Record whether `requirement` held; `message` says what was observed when it did not."""
        if requirement not in self.requirements:
            raise KeyError(f"check does not declare requirement {requirement}")
        self.findings.append(Finding(requirement, bool(condition), message))
        return bool(condition)

    def fail(self, requirement: str, message: str) -> None:
        self.expect(requirement, False, message)

    def tolerate(self, requirement: str, message: str) -> None:
        """The requirement held only in a tolerated variant (a non-preferred error code, say):
        a warning by default, a failure under a strict profile."""
        if requirement not in self.requirements:
            raise KeyError(f"check does not declare requirement {requirement}")
        self.findings.append(Finding(requirement, True, message, tolerated=True))

    def note(self, message: str) -> None:
        """An observation worth reporting that is not a finding (e.g. a lenient reading)."""
        self.notes.append(message)

    def attach(self, exchanges: list[Exchange]) -> None:
        """Add exchanges made elsewhere (e.g. by a session fixture) to this check's evidence."""
        known = {id(e) for e in self.evidence}
        self.evidence.extend(e for e in exchanges if id(e) not in known)

    @staticmethod
    def precondition(condition: Any, message: str) -> None:
        """Stop the check as `error` when something it builds on does not hold."""
        if not condition:
            raise PreconditionFailed(message)

    def statuses(self) -> dict[str, Status]:
        """Per declared requirement: violated if any finding failed, else satisfied."""
        result: dict[str, Status] = {}
        for rid in self.requirements:
            own = [f for f in self.findings if f.requirement == rid]
            if any(not f.satisfied for f in own):
                result[rid] = Status.VIOLATED
            elif any(f.tolerated for f in own):
                result[rid] = Status.TOLERATED
            else:
                result[rid] = Status.SATISFIED
        return result

    def failures(self) -> list[Finding]:
        """Findings worth reporting: violations and tolerated variants."""
        return [f for f in self.findings if not f.satisfied or f.tolerated]


def catalogue_level(requirement: str) -> Level:
    return load_catalogue()[requirement].level
