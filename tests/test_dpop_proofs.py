"""The suite's DPoP proofs are beyond doubt: checked against the published vectors of RFC 7638
and RFC 9449, and against every receiver rule of RFC 9449 §4.3 (each negative variant the
checks send is refused for the intended reason, and nothing else about it is wrong)."""

from __future__ import annotations

import threading
import time

import jwt
import pytest

from conformance.oauth.dpop import (
    DPoPKey,
    ProofError,
    access_token_hash,
    normalise_uri,
    thumbprint,
    verify_proof,
)
from conformance.races import MAX_PARALLEL, concurrently

# RFC 7638 §3.1: the example RSA key and its SHA-256 thumbprint.
RFC7638_KEY = {
    "kty": "RSA",
    "n": (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_B"
        "JECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_F"
        "DW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4"
        "vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    ),
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"

# RFC 9449 §4.1 (Figure 2 proof, its key) and §6.1 (Figure 9: the key's `jkt`).
RFC9449_KEY = {
    "kty": "EC",
    "x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
    "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA",
    "crv": "P-256",
}
RFC9449_JKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
RFC9449_PROOF = (
    "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0"
    "VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10"
    "NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoi"
    "UE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ.2-"
    "GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg"
)
RFC9449_PROOF_IAT = 1562262616
# RFC 9449 §7.1: the example access token and the `ath` of the proof that accompanies it.
RFC9449_ACCESS_TOKEN = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"
RFC9449_ATH = "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"

TOKEN_URL = "https://server.example.com/token"


def test_thumbprint_matches_rfc7638_example() -> None:
    assert thumbprint(RFC7638_KEY) == RFC7638_THUMBPRINT


def test_thumbprint_matches_rfc9449_example() -> None:
    assert thumbprint(RFC9449_KEY) == RFC9449_JKT


def test_ath_matches_rfc9449_example() -> None:
    assert access_token_hash(RFC9449_ACCESS_TOKEN) == RFC9449_ATH


def test_rfc9449_example_proof_verifies() -> None:
    verified = verify_proof(RFC9449_PROOF, method="POST", url=TOKEN_URL, now=RFC9449_PROOF_IAT)
    assert verified.jkt == RFC9449_JKT
    assert verified.claims["jti"] == "-BwC3ESc6acc2lTc"


def test_rfc9449_example_proof_is_refused_for_another_request_or_time() -> None:
    with pytest.raises(ProofError, match="htm"):
        verify_proof(RFC9449_PROOF, method="GET", url=TOKEN_URL, now=RFC9449_PROOF_IAT)
    with pytest.raises(ProofError, match="htu"):
        verify_proof(
            RFC9449_PROOF,
            method="POST",
            url="https://server.example.com/authorize",
            now=RFC9449_PROOF_IAT,
        )
    with pytest.raises(ProofError, match="iat"):
        verify_proof(RFC9449_PROOF, method="POST", url=TOKEN_URL, now=RFC9449_PROOF_IAT + 301)


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_built_proof_has_the_rfc9449_shape(alg: str) -> None:
    key = DPoPKey(alg)
    proof = key.proof("POST", f"{TOKEN_URL}?x=1#frag", access_token="tok", nonce="n-1")
    header = jwt.get_unverified_header(proof)
    assert header["typ"] == "dpop+jwt" and header["alg"] == alg
    assert header["jwk"] == key.jwk and "d" not in header["jwk"]
    claims = verify_proof(proof, method="POST", url=TOKEN_URL, access_token="tok", jkt=key.jkt)
    assert claims.claims["htu"] == TOKEN_URL  # §4.2: without query and fragment
    assert claims.claims["ath"] == access_token_hash("tok")
    assert claims.claims["nonce"] == "n-1"
    assert abs(claims.claims["iat"] - time.time()) < 5
    assert key.jkt == thumbprint(key.jwk)


def test_every_proof_gets_a_fresh_jti() -> None:
    key = DPoPKey()
    jtis = {
        jwt.decode(key.proof("GET", TOKEN_URL), options={"verify_signature": False})["jti"]
        for _ in range(50)
    }
    assert len(jtis) == 50


@pytest.mark.parametrize(
    ("variant", "reason"),
    [
        ({"typ": "JWT"}, "typ"),
        ({"typ": None}, "typ"),
        ({"alg": "none"}, "asymmetric"),
        ({"alg": "HS256"}, "asymmetric"),
        ({"include_private_key": True}, "private"),
        ({"claims": {"jti": None}}, "no jti"),
        ({"claims": {"htm": None}}, "no htm"),
        ({"claims": {"iat": None}}, "no iat"),
        ({"claims": {"htm": "GET"}}, "htm"),
        ({"claims": {"htu": "https://server.example.com/other"}}, "htu"),
        ({"iat": int(time.time()) - 3600}, "iat"),
        ({"iat": int(time.time()) + 3600}, "iat"),
    ],
)
def test_each_negative_variant_is_refused_for_its_reason(
    variant: dict[str, object], reason: str
) -> None:
    key = DPoPKey()
    proof = key.proof("POST", TOKEN_URL, **variant)  # type: ignore[arg-type]
    with pytest.raises(ProofError, match=reason):
        verify_proof(proof, method="POST", url=TOKEN_URL)


def test_proof_signed_by_another_key_is_refused() -> None:
    key, other = DPoPKey(), DPoPKey()
    with pytest.raises(ProofError, match="signature"):
        verify_proof(key.proof("POST", TOKEN_URL, signer=other), method="POST", url=TOKEN_URL)


def test_proof_of_another_key_is_refused_for_a_bound_token() -> None:
    key, other = DPoPKey(), DPoPKey()
    proof = other.proof("GET", TOKEN_URL, access_token="tok")
    with pytest.raises(ProofError, match="bound"):
        verify_proof(proof, method="GET", url=TOKEN_URL, access_token="tok", jkt=key.jkt)


def test_wrong_ath_is_refused() -> None:
    key = DPoPKey()
    proof = key.proof("GET", TOKEN_URL, access_token="other")
    with pytest.raises(ProofError, match="ath"):
        verify_proof(proof, method="GET", url=TOKEN_URL, access_token="tok", jkt=key.jkt)


@pytest.mark.parametrize(
    ("url", "normal"),
    [
        ("HTTPS://Server.Example.COM:443/token?x=1#f", "https://server.example.com/token"),
        ("http://127.0.0.1:80", "http://127.0.0.1/"),
        ("http://127.0.0.1:8080/mcp", "http://127.0.0.1:8080/mcp"),
    ],
)
def test_htu_normalisation(url: str, normal: str) -> None:
    assert normalise_uri(url) == normal


def test_concurrently_releases_all_requests_together() -> None:
    inside = 0
    peak = 0
    lock = threading.Lock()

    def send(index: int) -> int:
        nonlocal inside, peak
        with lock:
            inside += 1
            peak = max(peak, inside)
        time.sleep(0.05)
        with lock:
            inside -= 1
        return index

    assert concurrently(5, send) == [0, 1, 2, 3, 4]
    assert peak == 5
    assert len(concurrently(MAX_PARALLEL + 10, lambda i: i)) == MAX_PARALLEL
