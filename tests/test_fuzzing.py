"""The fuzzing is sound, bounded and reproducible.

Its vocabulary only ever makes a request invalid (never a no-op, never an empty value, never a
signature a lenient decoder could read back); the runner sends each mutation once, shrinks a
failure to a minimal reproducer kept as evidence, keeps everything else out of the report, and
turns a request it could not complete into `error`. Against the embedded reference:
`--fuzz-examples` changes how many examples are sent, the fixed seed gives the same verdicts
twice, and a defect run shows the shrunk request in results.json and summary.md.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from hypothesis import find, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample

from conformance.config import DEFAULT_FUZZ_EXAMPLES
from conformance.errors import TargetUnreachable
from conformance.evidence import Exchange
from conformance.fuzz import jws
from conformance.fuzz.forms import Declare, Field, edits, form_mutations, uri_edits
from conformance.fuzz.properties import (
    TOKEN_ENDPOINT_ERRORS,
    jsonrpc_refusal,
    resource_error,
    token_error,
)
from conformance.fuzz.runner import REPRODUCER, Judgement, Observed, Target, fuzz, held, violated
from conformance.http import record as record_exchange
from conformance.http import recording
from conformance.oauth.dpop import DPoPKey
from conformance.verdict import Status, Verdict
from tests.conftest import SuiteRun, run_suite_forked

FUZZ_CHECKS = "test_fuzz_"  # -k: the fuzz check modules, and nothing else
DEFECT = "rs-jsonrpc-batch-crash"
REQUIREMENT = "FUZZ-MCP-REQUEST"


def _all(strategy: st.SearchStrategy[Any], n: int = 100) -> list[Any]:
    """`n` examples of `strategy`, drawn with hypothesis's own machinery."""
    found: list[Any] = []

    def keep(value: Any) -> bool:
        found.append(value)
        return False

    with pytest.raises(NoSuchExample):
        find(strategy, keep, settings=settings(max_examples=n, database=None))
    return found


# --- the vocabulary ------------------------------------------------------------------------------


def test_edits_always_change_a_value_and_never_empty_it() -> None:
    value = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    for edit in _all(edits(value)) + _all(uri_edits("https://mcp.example.com/mcp")):
        changed = edit.apply(value)
        assert changed not in (value, ""), edit


def test_header_safe_edits_stay_ascii() -> None:
    for edit in _all(edits("opaque-token-value", unicode=False)):
        assert edit.apply("opaque-token-value").isascii(), edit
        assert edit.apply("opaque-token-value").strip() == edit.apply("opaque-token-value"), edit


def test_unsigned_jws_mutations_never_leave_a_verifiable_signature() -> None:
    """The signature's last character and non-base64url characters inside the signature are
    never touched (RFC 4648 §3.5: spare bits, skipped characters)."""
    proof = DPoPKey().proof("POST", "https://as.example.com/token")
    signature = proof.split(".")[2]
    for stratum in jws.unsigned_edits(proof, unicode=True):
        for edit in _all(stratum, 30):
            mutated = edit.apply(proof)
            assert mutated != proof, edit
            pieces = mutated.split(".")
            if len(pieces) == 3 and pieces[:2] == proof.split(".")[:2]:
                assert pieces[2][-1:] == signature[-1:] or len(pieces[2]) < len(signature), edit
                assert set(pieces[2]) <= set(jws.BASE64URL), edit


def test_set_member_changes_one_member_and_keeps_the_signature() -> None:
    proof = DPoPKey().proof("POST", "https://as.example.com/token")
    mutated = jws.SetMember(0, "jwk", '["x"]').apply(proof)
    header, claims = jws.parts(mutated)
    original_header, original_claims = jws.parts(proof)
    assert header == {**original_header, "jwk": ["x"]}
    assert claims == original_claims
    assert mutated.split(".")[1:] == proof.split(".")[1:]


def test_resigned_proofs_verify_with_their_own_key() -> None:
    key = DPoPKey()
    proof = key.proof("POST", "https://as.example.com/token")
    header, claims = jws.Resign(1, "htm", '"GET"').apply_to(*jws.parts(proof))
    signed = jws.sign(header, claims, key.private_key, key.alg)
    decoded = jwt.decode(signed, key.private_key.public_key(), algorithms=[key.alg])
    assert decoded["htm"] == "GET"


def test_form_mutations_have_a_stratum_per_field_and_one_for_the_body() -> None:
    fields = [Field("grant_type", edits("authorization_code")), Field("code", edits("abc123"))]
    strata = form_mutations(fields)
    assert len(strata) == 3
    params = (("grant_type", "authorization_code"), ("code", "abc123"))
    for stratum, name in zip(strata, ("grant_type", "code"), strict=False):
        for mutation in _all(stratum, 50):
            assert mutation.apply(params) != params or isinstance(mutation, Declare)
            assert name in str(mutation)


# --- the properties ------------------------------------------------------------------------------


def _response(status: int, body: Any = None, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def test_token_error_property() -> None:
    assert (
        token_error(_response(400, {"error": "invalid_grant"}), TOKEN_ENDPOINT_ERRORS).observed
        is Observed.HELD
    )
    assert (
        token_error(_response(401, {"error": "invalid_client"}), TOKEN_ENDPOINT_ERRORS).observed
        is Observed.HELD
    )
    assert (
        token_error(_response(403, {"error": "invalid_grant"}), TOKEN_ENDPOINT_ERRORS).observed
        is Observed.TOLERATED
    )
    for bad in (
        _response(200, {"access_token": "x", "token_type": "Bearer"}),
        _response(500),
        _response(400, {"error": "server_error"}),
        httpx.Response(400, text="<html>bad</html>"),
        _response(302, location="https://elsewhere.example"),
    ):
        assert token_error(bad, TOKEN_ENDPOINT_ERRORS).violated, bad


def test_resource_error_property() -> None:
    challenge = 'Bearer error="invalid_token", resource_metadata="https://x/.well-known/y"'
    assert (
        resource_error(_response(401, **{"WWW-Authenticate": challenge})).observed is Observed.HELD
    )
    assert resource_error(_response(401)).violated  # no challenge
    assert resource_error(_response(200, {"result": {}})).violated
    assert resource_error(_response(500)).violated


def test_jsonrpc_refusal_property() -> None:
    error = {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "Invalid Request"}}
    assert jsonrpc_refusal(_response(400, error)).observed is Observed.HELD
    assert jsonrpc_refusal(httpx.Response(202)).observed is Observed.HELD
    assert (
        jsonrpc_refusal(httpx.Response(415, text="Unsupported Media Type")).observed
        is Observed.HELD
    )
    tool_error = {"jsonrpc": "2.0", "id": 1, "result": {"content": [], "isError": True}}
    assert jsonrpc_refusal(_response(200, tool_error)).observed is Observed.HELD
    assert jsonrpc_refusal(
        _response(200, {"jsonrpc": "2.0", "id": 1, "result": {"content": []}})
    ).violated
    reserved = {"jsonrpc": "2.0", "id": 1, "error": {"code": -32300, "message": "x"}}
    assert jsonrpc_refusal(_response(200, reserved)).violated
    assert jsonrpc_refusal(_response(503)).violated


# --- the runner ----------------------------------------------------------------------------------


def _exchange(value: int) -> Exchange:
    return Exchange("POST", "https://as.example.com/token", {}, f"n={value}", status=200)


class _Target:
    """A fake endpoint: every integer of at least `threshold` breaks the property."""

    def __init__(self, threshold: int, verdict: Verdict) -> None:
        self.threshold, self.sent, self.verdict = threshold, [], verdict

    def attempt(self, value: int) -> Judgement:
        self.sent.append(value)
        record_exchange(_exchange(value))  # as the suite's HTTP client does
        if value >= self.threshold:
            return violated(f"{value} broke it")
        return held()


def test_runner_shrinks_to_a_minimal_reproducer_and_keeps_only_it() -> None:
    verdict = Verdict(("FUZZ-TOKEN-ENDPOINT",))
    fake = _Target(1000, verdict)
    target = Target("integers", [st.integers(0, 10**6)], fake.attempt)
    with recording(verdict.evidence):  # the check's recording
        fuzz(verdict, "FUZZ-TOKEN-ENDPOINT", target, 200)
    assert verdict.statuses()["FUZZ-TOKEN-ENDPOINT"] is Status.VIOLATED
    [finding] = verdict.findings
    assert finding.message.startswith("integers, 1000: 1000 broke it")
    assert len(fake.sent) == len(set(fake.sent)), "a mutation was sent twice"
    [kept] = verdict.evidence  # the fuzzed exchanges stay out of the evidence, but this one
    assert kept.request_body == "n=1000" and REPRODUCER in kept.note
    assert any(REPRODUCER in note for note in verdict.notes)


def test_runner_records_a_pass_and_the_count() -> None:
    verdict = Verdict(("FUZZ-TOKEN-ENDPOINT",))
    fake = _Target(10**9, verdict)
    target = Target("integers", [st.integers(0, 100), st.integers(200, 300)], fake.attempt)
    with recording(verdict.evidence):  # the check's recording
        fuzz(verdict, "FUZZ-TOKEN-ENDPOINT", target, 10)
    assert verdict.statuses()["FUZZ-TOKEN-ENDPOINT"] is Status.SATISFIED
    assert verdict.evidence == []
    assert any(re.search(r"5 examples in each of 2 strata", note) for note in verdict.notes)
    assert any(v >= 200 for v in fake.sent) and any(v <= 100 for v in fake.sent)


def test_runner_turns_a_transport_failure_into_an_error() -> None:
    verdict = Verdict(("FUZZ-TOKEN-ENDPOINT",))

    def attempt(value: int) -> Judgement:
        raise TargetUnreachable("POST https://as.example.com/token timed out")

    with pytest.raises(TargetUnreachable):
        fuzz(verdict, "FUZZ-TOKEN-ENDPOINT", Target("x", [st.integers()], attempt), 20)


# --- against the embedded reference --------------------------------------------------------------


def _fuzz_records(run: SuiteRun) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in run.results["checks"] if c["id"].startswith("robustness/")}


def _per_stratum(record: dict[str, Any]) -> int:
    match = re.search(r"(\d+) examples in each of", " ".join(record["notes"]))
    assert match, record["notes"]
    return int(match.group(1))


@pytest.fixture(scope="module")
def defect_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[SuiteRun, SuiteRun]:
    """The fuzz checks, twice, against the reference with a defect they must find."""

    def run(name: str) -> SuiteRun:
        directory = tmp_path_factory.mktemp(name)
        return run_suite_forked(
            directory, "--target", "embedded", "--defect", DEFECT, "-k", FUZZ_CHECKS
        )

    return run("fuzz-defect-first"), run("fuzz-defect-second")


def test_every_fuzz_check_passes_the_clean_reference(clean_run: SuiteRun) -> None:
    records = _fuzz_records(clean_run)
    assert len(records) == 7
    assert {r["outcome"] for r in records.values()} == {"passed"}, records
    default = f"--fuzz-examples {DEFAULT_FUZZ_EXAMPLES}"
    assert all(default in " ".join(r["notes"]) for r in records.values())


def test_fuzz_examples_option_changes_the_example_count(
    clean_run: SuiteRun, tmp_path: Path
) -> None:
    deeper = run_suite_forked(
        tmp_path, "--target", "embedded", "-k", FUZZ_CHECKS, "--fuzz-examples", "60"
    )
    default, more = _fuzz_records(clean_run), _fuzz_records(deeper)
    assert set(more) == set(default)
    for check, record in more.items():
        assert record["outcome"] == "passed", record
        assert _per_stratum(record) > _per_stratum(default[check]), check


def test_fuzz_examples_must_be_positive(tmp_path: Path) -> None:
    run = run_suite_forked(tmp_path, "--target", "embedded", "--fuzz-examples", "0")
    assert run.exit_code == pytest.ExitCode.USAGE_ERROR
    assert "--fuzz-examples 0: give one or more" in run.stderr


def test_same_seed_same_verdicts(defect_runs: tuple[SuiteRun, SuiteRun]) -> None:
    first, second = (_fuzz_records(run) for run in defect_runs)

    def verdicts(records: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Outcome, findings (the reproducer's mutation among them) and examples per stratum;
        timestamps (a re-signed `exp`, say) differ from run to run."""
        timestamps = re.compile(r"\d{9,}")
        return {
            check: (r["outcome"], timestamps.sub("T", r["reason"]), _per_stratum(r))
            for check, r in records.items()
        }

    assert verdicts(first) == verdicts(second)
    assert any(r["outcome"] == "failed" for r in first.values())


def test_a_found_defect_shows_its_minimal_reproducer(
    defect_runs: tuple[SuiteRun, SuiteRun],
) -> None:
    run = defect_runs[0]
    assert run.requirement_outcomes()[REQUIREMENT] == "failed"
    [record] = [c for c in _fuzz_records(run).values() if REQUIREMENT in c["requirements"]]
    assert record["outcome"] == "failed"
    reproducers = [e for e in record["evidence"] if e["note"].startswith(REPRODUCER)]
    assert len(reproducers) == 1, record["evidence"]
    [exchange] = reproducers
    assert exchange["method"] == "POST" and exchange["status"] == 500
    assert exchange["request_body"].lstrip().startswith("["), "the batch, as sent"
    assert exchange["request_headers"]["authorization"].endswith("<redacted-signature>")
    assert REPRODUCER in record["reason"]
    fuzzed = [e for e in record["evidence"] if e["note"].startswith("fuzz:")]
    assert fuzzed == [], "only the reproducer of all the fuzzed exchanges is evidence"
    summary = (run.report_dir / "summary.md").read_text()
    assert "## Minimal reproducers" in summary
    assert f"{REPRODUCER}: the body sent in a batch of one" in summary


def test_fuzzing_draws_no_constants_from_the_suites_own_source() -> None:
    """hypothesis mixes literals from "local" modules into its draws: for an editable install
    that is our own source, for a wheel it is not, so the same seed would send other requests.
    While the runner searches, that pool is empty; afterwards hypothesis has its own back."""
    from hypothesis.internal.conjecture import providers

    from conformance.fuzz.runner import _no_source_constants

    collect = providers._get_local_constants
    assert len(collect()) > 0  # this checkout is local to hypothesis: it finds our literals
    with _no_source_constants():
        assert len(providers._get_local_constants()) == 0
    assert providers._get_local_constants is collect
