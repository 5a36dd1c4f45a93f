"""One fuzz check: hypothesis searches the mutations of a known-good request for one that
breaks a property, and shrinks what it finds to a minimal reproducer.

A target's mutations come in strata (a parameter, a header member, a claim, the body as a
whole); `fuzz` runs one `hypothesis.find` per stratum, so every part of the request is fuzzed
even in a short CI run, and spreads `--fuzz-examples` over them (at least one each). The seed
is fixed, there is no example database and no deadline, so the same target gets the same
verdicts on every run. Strategies list their harshest variants first: hypothesis tries a
strategy's simplest example first, and shrinks towards it. Each distinct mutation is sent once
and its judgement kept, since hypothesis replays examples while shrinking and a target's state
can change between two identical requests; shrinking is bounded (`SHRINK_BUDGET` requests).

None of the fuzzed exchanges becomes evidence except the shrunk failing example's, marked
"minimal reproducer" (its request as sent, redacted, and the answer); a note keeps the number
of examples tried. A request the suite could not complete (no answer, an oversized one) ends
the check as `error` once the search stops, like any lost precondition.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from random import Random
from typing import Generic, TypeVar

import pytest
from hypothesis import HealthCheck, Phase, Verbosity, find, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample

from conformance.config import DEFAULT_FUZZ_EXAMPLES
from conformance.errors import HarnessError
from conformance.evidence import Exchange
from conformance.fuzz.jws import Signer
from conformance.http import recording
from conformance.verdict import Verdict

SEED = 0x5EED_F022
"""The fixed seed: the same target gets the same examples, and the same verdicts, every run."""
SHRINK_BUDGET = 150
"""Requests at most spent on shrinking a failing example."""
REPRODUCER = "minimal reproducer"

M = TypeVar("M")  # a mutation: hashable (a frozen dataclass) and printable


class Observed(StrEnum):
    HELD = "held"
    TOLERATED = "tolerated"  # a variant the specification tolerates (another error status)
    VIOLATED = "violated"


@dataclass(frozen=True)
class Judgement:
    observed: Observed
    message: str = ""

    @property
    def violated(self) -> bool:
        return self.observed is Observed.VIOLATED


def held() -> Judgement:
    return Judgement(Observed.HELD)


def tolerated(message: str) -> Judgement:
    return Judgement(Observed.TOLERATED, message)


def violated(message: str) -> Judgement:
    return Judgement(Observed.VIOLATED, message)


@dataclass
class Target(Generic[M]):
    """What to fuzz: mutations of a known-good request, in `strata` (one strategy per part of
    the request: a parameter, a header member, a claim), and `attempt`, which sends one
    mutated request and judges the answer. `what` names the requests in messages."""

    what: str
    strata: Sequence[st.SearchStrategy[M]]
    attempt: Callable[[M], Judgement]


@dataclass
class Probe:
    mutation: str
    judgement: Judgement
    exchanges: list[Exchange]


@dataclass
class _Search(Generic[M]):
    target: Target[M]
    limit: int
    probes: dict[M, Probe] = field(default_factory=dict)
    harness_error: HarnessError | None = None

    def condition(self, mutation: M) -> bool:
        """True when `mutation` breaks the property (each mutation is sent at most once)."""
        probe = self.probes.get(mutation)
        if probe is not None:
            return probe.judgement.violated
        if self.harness_error is not None or len(self.probes) >= self.limit:
            return False
        with recording(alone=True) as exchanges:  # evidence only if it is the reproducer
            try:
                judgement = self.target.attempt(mutation)
            except HarnessError as exc:
                self.harness_error = exc
                return False
        self.probes[mutation] = Probe(str(mutation), judgement, exchanges)
        return judgement.violated

    def count(self, observed: Observed) -> int:
        return sum(1 for p in self.probes.values() if p.judgement.observed is observed)


def examples_for(config: pytest.Config) -> int:
    """How many examples each fuzz check generates: `--fuzz-examples`, else the default."""
    value = config.getoption("fuzz_examples", None)
    return int(value) if value else DEFAULT_FUZZ_EXAMPLES


def optional_signer(request: pytest.FixtureRequest, fixture: str) -> Signer | None:
    """A test signing hook fixture (`token_signer`, `idp_signer`), or None where the target
    offers none: re-signed mutations are then left out."""
    try:
        signer: Signer = request.getfixturevalue(fixture)
    except pytest.skip.Exception:
        return None
    return signer


def _settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        database=None,
        deadline=None,
        derandomize=False,  # the seed is fixed instead (`find(random=...)`)
        phases=(Phase.generate, Phase.shrink),
        verbosity=Verbosity.quiet,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )


def _mark(exchanges: list[Exchange], label: str) -> list[Exchange]:
    for exchange in exchanges:
        exchange.note = label
    return exchanges


@contextlib.contextmanager
def _no_source_constants() -> Iterator[None]:
    """Keep hypothesis from drawing constants out of the source of "local" modules.

    hypothesis (6.13x and later) mixes literals from every module outside site-packages into
    its draws. For us those are the suite's own modules in an editable install, but not in an
    installed wheel: the same seed would send other requests depending on how the suite was
    installed, and reading the sources costs ~1 s per process. There is no setting for it, so
    the function that collects them (internal; skipped if absent) answers "none" while we
    search.
    """
    try:
        from hypothesis.internal.conjecture import providers
    except ImportError:  # pragma: no cover - a hypothesis without the module
        yield
        return
    collect = getattr(providers, "_get_local_constants", None)
    constants = getattr(providers, "Constants", None)
    if collect is None or constants is None:  # pragma: no cover - hypothesis changed
        yield
        return
    none = constants()
    providers._get_local_constants = lambda: none
    try:
        yield
    finally:
        providers._get_local_constants = collect


def fuzz(verdict: Verdict, requirement: str, target: Target[M], examples: int) -> bool:
    """Search about `examples` mutations of `target`, spread over its strata (at least one
    each), for one that breaks `requirement`'s property; record the shrunk one as a finding
    with its exchange, or that every example held. The search stops at the first stratum
    with a failure. True when the property held."""
    per_stratum = max(1, round(examples / max(1, len(target.strata))))
    budget = per_stratum * len(target.strata) + SHRINK_BUDGET
    search = _Search(target, limit=budget)
    minimal: M | None = None
    for stratum in target.strata:
        try:
            with _no_source_constants():
                minimal = find(
                    stratum,
                    search.condition,
                    settings=_settings(per_stratum),
                    random=Random(SEED),
                )
        except NoSuchExample:
            continue
        break
    verdict.note(
        f"{target.what}: {len(search.probes)} distinct mutated requests sent "
        f"({per_stratum} examples in each of {len(target.strata)} strata: --fuzz-examples "
        f"{examples}, seed {SEED:#x}); {search.count(Observed.VIOLATED)} broke the property, "
        f"{search.count(Observed.TOLERATED)} were answered in a tolerated variant"
    )
    if minimal is not None:
        probe = search.probes[minimal]
        verdict.fail(
            requirement,
            f"{target.what}, {probe.mutation}: {probe.judgement.message} ({REPRODUCER})",
        )
        verdict.attach(_mark(probe.exchanges, f"{REPRODUCER}: {probe.mutation}"))
        verdict.note(
            f"{REPRODUCER}: {target.what}, {probe.mutation} (shrunk by hypothesis; the "
            f"exchange marked '{REPRODUCER}' is the exact request, redacted, and its answer)"
        )
    else:
        first = next(
            (p for p in search.probes.values() if p.judgement.observed is Observed.TOLERATED),
            None,
        )
        if first is not None:
            verdict.tolerate(
                requirement, f"{target.what}, {first.mutation}: {first.judgement.message}"
            )
            verdict.attach(_mark(first.exchanges, f"tolerated variant: {first.mutation}"))
        else:
            verdict.expect(requirement, True, f"{target.what}: every mutation was refused")
    if search.harness_error is not None:
        raise search.harness_error
    return minimal is None
