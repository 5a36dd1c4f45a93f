"""Validation of RFC 9068 JWT access tokens presented to the MCP server.

The checks follow RFC 9068 §4 (typ, issuer, audience, signature with the issuer's keys, expiry)
and RFC 8725 §3.1 (the algorithm is pinned, never taken from the token). `TokenValidator`
returns a typed `AccessToken` or raises `TokenValidationError` with a description fit for
the `error_description` of an `invalid_token` challenge (RFC 6750 §3).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt

from reference.mcp_server.keys import KeyFetchError, KeyStore, UnknownKeyError
from reference.settings import BASIC_SCOPE, ReferenceSettings

PINNED_ALGORITHM = "RS256"
"""The only signature algorithm the AS uses; RFC 8725 §3.1: never trust the token's `alg`."""

ACCEPTED_TYPES = frozenset({"at+jwt", "application/at+jwt"})
"""RFC 9068 §2.1 / §4: the `typ` header of a JWT access token, compared case-insensitively."""

CLOCK_SKEW_SECONDS = 60
"""Leeway for `exp`, `nbf` and `iat`."""


class TokenValidationError(Exception):
    """The presented token is not acceptable (answered with 401 `invalid_token`)."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class MalformedTokenError(TokenValidationError):
    """The credential is not a compact-serialised JWS at all."""


@dataclass(frozen=True)
class AccessToken:
    """A validated access token and the claims the MCP server uses."""

    raw: str
    issuer: str | None
    subject: str | None
    client_id: str | None
    audience: tuple[str, ...]
    scopes: frozenset[str]
    expires_at: int | None
    claims: Mapping[str, Any] = field(repr=False)

    @property
    def jkt(self) -> str | None:
        """RFC 9449 §6.1: the JWK thumbprint the token is bound to (`cnf.jkt`), if any."""
        cnf = self.claims.get("cnf")
        jkt = cnf.get("jkt") if isinstance(cnf, Mapping) else None
        return jkt if isinstance(jkt, str) and jkt else None


def parse_scopes(value: Any) -> frozenset[str]:
    """The `scope` claim (RFC 9068 §2.2.3, space-delimited per RFC 6749 §3.3) as a set."""
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list):
        return frozenset(item for item in value if isinstance(item, str))
    return frozenset()


def _audience(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(item for item in value if isinstance(item, str))
    return ()


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header of a compact JWS (RFC 7515 §7.1: exactly three dot-separated parts)."""
    if token.count(".") != 2:
        raise MalformedTokenError("the access token is not a JWT")
    try:
        return jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as exc:
        raise MalformedTokenError("the access token is not a JWT") from exc


def _peek_issuer(token: str) -> str | None:
    """The unverified `iss` of a JWT, or None (used only to route a defect switch)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return None
    iss = claims.get("iss")
    return iss if isinstance(iss, str) else None


def _describe(exc: jwt.InvalidTokenError) -> str:
    """A short, client-safe description of a PyJWT validation failure."""
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "the access token has expired"
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "the access token is not yet valid"
    if isinstance(exc, jwt.InvalidAudienceError):
        return "the access token audience does not include this resource"
    if isinstance(exc, jwt.InvalidIssuerError):
        return "the access token issuer is not trusted"
    if isinstance(exc, jwt.InvalidSignatureError):
        return "the access token signature is invalid"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"the access token has no {exc.claim} claim"
    if isinstance(exc, jwt.DecodeError):
        return "the access token could not be decoded"
    return "the access token is invalid"


class TokenValidator:
    """Validates bearer tokens for one MCP server (its resource id and trusted issuer)."""

    def __init__(self, settings: ReferenceSettings, keys: KeyStore) -> None:
        self.settings = settings
        self.keys = keys

    async def validate(self, token: str) -> AccessToken:
        """Run every RFC 9068 §4 check; return the token's claims or raise."""
        header = _unverified_header(token)
        if self.settings.defect("rs-accepts-idp-assertions") and (
            _peek_issuer(token) == self.settings.idp_issuer
        ):
            return await self._accept_idp_assertion(token, header)
        verify_signature = self._check_algorithm(header)
        self._check_type(header)
        if self.settings.defect("rs-skips-signature-check"):
            verify_signature = False
        key = await self._verification_key(token, header) if verify_signature else None
        claims = self._decode(token, key, verify_signature)
        return AccessToken(
            raw=token,
            issuer=_optional_str(claims.get("iss")),
            subject=_optional_str(claims.get("sub")),
            client_id=_optional_str(claims.get("client_id")),
            audience=_audience(claims.get("aud")),
            scopes=parse_scopes(claims.get("scope")),
            expires_at=claims.get("exp") if isinstance(claims.get("exp"), int) else None,
            claims=claims,
        )

    async def _accept_idp_assertion(self, token: str, header: Mapping[str, Any]) -> AccessToken:
        """The `rs-accepts-idp-assertions` defect: a confused resource server.

        Any JWT the enterprise IdP signed (an ID token, an ID-JAG) passes, whatever its `typ`
        or `aud`, and grants at least the basic scope. An ID-JAG is an authorization grant
        for the authorization server it names (draft-ietf-oauth-identity-assertion-authz-grant,
        redeemed with the RFC 7523 jwt-bearer grant), never an access token, and RFC 9068 §4
        has a resource server accept only `at+jwt` tokens of its own issuer and audience.
        """
        if header.get("alg") != PINNED_ALGORITHM:
            raise TokenValidationError(f"the access token must be signed with {PINNED_ALGORITHM}")
        kid = header.get("kid")
        try:
            jwks = await self.keys.idp_jwks(self.settings.idp_issuer)
            key = await jwks.get_key(kid if isinstance(kid, str) else None)
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[PINNED_ALGORITHM],
                issuer=self.settings.idp_issuer,
                options={"verify_aud": False, "require": ["exp", "iss"]},
                leeway=CLOCK_SKEW_SECONDS,
            )
        except (UnknownKeyError, KeyFetchError) as exc:
            raise TokenValidationError("the access token was not signed by a known key") from exc
        except jwt.InvalidTokenError as exc:
            raise TokenValidationError(_describe(exc)) from exc
        client_id = claims.get("client_id", claims.get("azp"))
        return AccessToken(
            raw=token,
            issuer=_optional_str(claims.get("iss")),
            subject=_optional_str(claims.get("sub")),
            client_id=_optional_str(client_id),
            audience=_audience(claims.get("aud")),
            scopes=parse_scopes(claims.get("scope")) | {BASIC_SCOPE},
            expires_at=claims.get("exp") if isinstance(claims.get("exp"), int) else None,
            claims=claims,
        )

    def _check_algorithm(self, header: Mapping[str, Any]) -> bool:
        """RFC 8725 §3.1 / RFC 9068 §4: only the pinned algorithm; returns whether to verify."""
        alg = header.get("alg")
        if alg == PINNED_ALGORITHM:
            return True
        if (
            isinstance(alg, str)
            and alg.lower() == "none"
            and self.settings.defect("rs-accepts-alg-none")
        ):
            return False
        raise TokenValidationError(f"the access token must be signed with {PINNED_ALGORITHM}")

    def _check_type(self, header: Mapping[str, Any]) -> None:
        """RFC 9068 §4: reject JWTs whose `typ` is not `at+jwt` (e.g. ID tokens)."""
        if self.settings.defect("rs-ignores-typ"):
            return
        accepted = set(ACCEPTED_TYPES)
        if self.settings.defect("jwt-typ-plain-jwt"):
            accepted.add("jwt")
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in accepted:
            raise TokenValidationError("the token is not an at+jwt access token")

    async def _verification_key(self, token: str, header: Mapping[str, Any]) -> jwt.PyJWK:
        """The issuer's key for the token's `kid` (RFC 9068 §4; never `jwk`/`jku` headers)."""
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise TokenValidationError("the access token kid is not a string")
        try:
            jwks = self.keys.issuer_jwks
            if self.settings.defect("rs-trusts-token-issuer"):
                iss = self._unverified_issuer(token)
                if iss != self.settings.issuer:
                    jwks = await self.keys.jwks_for_untrusted_issuer(iss)
            return await jwks.get_key(kid)
        except UnknownKeyError as exc:
            raise TokenValidationError("the access token was not signed by a known key") from exc
        except KeyFetchError as exc:
            raise TokenValidationError("the issuer's signing keys are unavailable") from exc

    @staticmethod
    def _unverified_issuer(token: str) -> str:
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError as exc:
            raise TokenValidationError(_describe(exc)) from exc
        iss = claims.get("iss")
        if not isinstance(iss, str):
            raise TokenValidationError("the access token has no iss claim")
        return iss

    def _decode(self, token: str, key: jwt.PyJWK | None, verify_signature: bool) -> dict[str, Any]:
        """Signature and claim checks: iss, aud (RFC 8707 / RFC 9068 §4), exp, nbf, iat."""
        check_time = not self.settings.defect("rs-ignores-expiry")
        check_aud = not self.settings.defect("rs-ignores-audience")
        check_iss = not self.settings.defect("rs-trusts-token-issuer")
        required = ["iat", "iss"]
        if check_time:
            required.append("exp")
        if check_aud:
            required.append("aud")
        options: dict[str, Any] = {
            "verify_signature": verify_signature,
            "verify_exp": check_time,
            "verify_nbf": check_time,
            "verify_iat": True,
            "verify_aud": check_aud,
            "verify_iss": check_iss,
            "verify_sub": True,
            "verify_jti": True,
            "require": required,
        }
        try:
            return jwt.decode(
                token,
                key=key if key is not None else "",
                algorithms=[PINNED_ALGORITHM],
                options=options,  # type: ignore[arg-type]
                audience=self.settings.mcp_url,
                issuer=self.settings.issuer,
                leeway=CLOCK_SKEW_SECONDS,
            )
        except jwt.InvalidTokenError as exc:
            raise TokenValidationError(_describe(exc)) from exc
