"""A DPoP downgrade is caught, and its evidence proves it (issue 4 acceptance).

With `rs-dpop-bearer-downgrade` on, the embedded MCP server takes a DPoP-bound token as a
plain Bearer token. The check for DPOP-RS-BEARER-DOWNGRADE must end `failed`, and its evidence
must show that request (`Authorization: Bearer <the bound token>`, redacted) and the 200.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_suite

CHECK = "test_bound_token_refused_as_bearer"


def test_bearer_downgrade_fails_with_request_and_200_in_evidence(tmp_path: Path) -> None:
    run = run_suite(
        tmp_path, "--target", "embedded", "--defect", "rs-dpop-bearer-downgrade", "-k", CHECK
    )
    checks = [c for c in run.results["checks"] if c["id"].endswith(CHECK)]
    assert len(checks) == 1, run.stdout
    check = checks[0]
    assert check["requirements"] == ["DPOP-RS-BEARER-DOWNGRADE"]
    assert check["outcome"] == "failed", check["reason"]
    assert run.requirement_outcomes()["DPOP-RS-BEARER-DOWNGRADE"] == "failed"

    downgraded = [
        e
        for e in check["evidence"]
        if e["request_headers"].get("authorization", "").startswith("Bearer ")
        and e["status"] == 200
    ]
    assert downgraded, [(e["note"], e["status"]) for e in check["evidence"]]
    exchange = downgraded[0]
    assert exchange["method"] == "POST"
    # The bound token is shown as a JWT without its signature, never replayable.
    credential = exchange["request_headers"]["authorization"].removeprefix("Bearer ")
    header, claims, signature = credential.split(".")
    assert header.startswith("eyJ") and claims.startswith("eyJ")
    assert signature == "<redacted-signature>"
    assert '"result"' in (exchange["response_body"] or "")
