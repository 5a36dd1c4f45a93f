"""Validation of RFC 9068 JWT access tokens presented to the MCP server.

The checks follow RFC 9068 §4 (typ, issuer, audience, signature with the issuer's keys, expiry)
and RFC 8725 §3.1 (the algorithm is pinned, never taken from the token) and §3.10 (keys come
from the issuer's JWK Set, never from `jwk`, `jku` or `x5u` headers). `TokenValidator`
returns a typed `AccessToken` or raises `TokenValidationError` with a description fit for
the `error_description` of an `invalid_token` challenge (RFC 6750 §3).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from jwt.utils import base64url_encode

from reference.mcp_server.keys import KeyFetchError, KeyStore, UnknownKeyError
from reference.settings import BASIC_SCOPE, ReferenceSettings

PINNED_ALGORITHM = "RS256"
"""The only signature algorithm the AS uses; RFC 8725 §3.1: never trust the token's `alg`."""

ACCEPTED_TYPES = frozenset({"at+jwt", "application/at+jwt"})
"""RFC 9068 §2.1 / §4: the `typ` header of a JWT access token, compared case-insensitively."""

CLOCK_SKEW_SECONDS = 60
"""Leeway for `exp`, `nbf` and `iat` (RFC 9068 §4: "usually no more than a few minutes")."""

WIDE_CLOCK_SKEW_SECONDS = 600
"""The leeway of the `rs-clock-skew-too-wide` defect."""

HMAC_DIGESTS: dict[str, Callable[[], Any]] = {
    "HS256": hashlib.sha256,
    "HS384": hashlib.sha384,
    "HS512": hashlib.sha512,
}
"""The HMAC algorithms the `rs-alg-from-header` defect verifies (RFC 7518 §3.2)."""

ID_TOKEN_CLAIMS = ("nonce", "azp")
"""Claims of an OpenID Connect ID token (OIDC Core §2) that no access token here carries."""


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


def _peek_claims(token: str) -> dict[str, Any]:
    """The unverified claims of a JWT, or {} (used only to route defect switches)."""
    try:
        return jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return {}


def _looks_like_id_token(token: str, header: Mapping[str, Any]) -> bool:
    """An untyped or `JWT`-typed token with ID token claims (the `rs-accepts-id-tokens` route)."""
    typ = header.get("typ")
    claims = _peek_claims(token)
    return (typ is None or (isinstance(typ, str) and typ.lower() == "jwt")) and any(
        name in claims for name in ID_TOKEN_CLAIMS
    )


def _access_token(
    token: str, claims: dict[str, Any], extra_scopes: frozenset[str] = frozenset()
) -> AccessToken:
    client_id = claims.get("client_id", claims.get("azp"))
    return AccessToken(
        raw=token,
        issuer=_optional_str(claims.get("iss")),
        subject=_optional_str(claims.get("sub")),
        client_id=_optional_str(client_id),
        audience=_audience(claims.get("aud")),
        scopes=parse_scopes(claims.get("scope")) | extra_scopes,
        expires_at=claims.get("exp") if isinstance(claims.get("exp"), int) else None,
        claims=claims,
    )


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
            _peek_claims(token).get("iss") == self.settings.idp_issuer
        ):
            return await self._accept_idp_assertion(token, header)
        if self.settings.defect("rs-accepts-id-tokens") and _looks_like_id_token(token, header):
            return await self._accept_id_token(token, header)
        alg = header.get("alg")
        hmac_alg = alg if isinstance(alg, str) and alg in HMAC_DIGESTS else None
        if hmac_alg and self.settings.defect("rs-alg-from-header"):
            self._check_type(header)
            claims = await self._verify_hmac_with_public_key(token, header, hmac_alg)
            return _access_token(token, claims)
        verify_signature = self._check_algorithm(header)
        self._check_type(header)
        if self.settings.defect("rs-skips-signature-check"):
            verify_signature = False
        key = await self._verification_key(token, header) if verify_signature else None
        claims = self._decode(token, key, verify_signature and key is not None)
        return _access_token(token, claims)

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
        return _access_token(token, claims, frozenset({BASIC_SCOPE}))

    async def _accept_id_token(self, token: str, header: Mapping[str, Any]) -> AccessToken:
        """The `rs-accepts-id-tokens` defect: an ID token of the AS is taken for an access token.

        The token is validated as OpenID Connect Core §3.1.3.7 would validate it for some
        client (signature, issuer, expiry; `aud` is a client_id, so not checked against this
        resource) and grants the basic scope. RFC 8725 §3.11-3.12 and RFC 9068 §4 have the
        resource server refuse it: no `at+jwt` type, and an audience that is not this server.
        """
        if header.get("alg") != PINNED_ALGORITHM:
            raise TokenValidationError(f"the access token must be signed with {PINNED_ALGORITHM}")
        key = await self._verification_key(token, header)
        if key is None:
            raise TokenValidationError("the access token was not signed by a known key")
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[PINNED_ALGORITHM],
                issuer=self.settings.issuer,
                options={"verify_aud": False, "require": ["exp", "iat", "iss", "sub"]},
                leeway=CLOCK_SKEW_SECONDS,
            )
        except jwt.InvalidTokenError as exc:
            raise TokenValidationError(_describe(exc)) from exc
        return _access_token(token, claims, frozenset({BASIC_SCOPE}))

    async def _verify_hmac_with_public_key(
        self, token: str, header: Mapping[str, Any], alg: str
    ) -> dict[str, Any]:
        """The `rs-alg-from-header` defect: the algorithm comes from the token (RFC 8725 §2.1).

        An HS* token is checked as an HMAC whose secret is the issuer's public key in PEM
        form, the key a validator that trusts `alg` hands to its HMAC routine. Anyone can
        compute that HMAC, since the key is public.
        """
        key = await self._verification_key(token, header)
        if key is None:
            raise TokenValidationError("the access token was not signed by a known key")
        secret = key.key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        signing_input, _, signature = token.rpartition(".")
        digest = hmac.new(secret, signing_input.encode(), HMAC_DIGESTS[alg]).digest()
        if not hmac.compare_digest(base64url_encode(digest).decode(), signature):
            raise TokenValidationError("the access token signature is invalid")
        return self._decode(token, None, verify_signature=False)

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
        if typ is not None and self.settings.defect("rs-token-typ-type-crash"):
            typ = typ.lower()  # taken for a string: a number or array raises
        if not isinstance(typ, str) or typ.lower() not in accepted:
            raise TokenValidationError("the token is not an at+jwt access token")

    async def _verification_key(self, token: str, header: Mapping[str, Any]) -> jwt.PyJWK | None:
        """The issuer's key for the token's `kid` (RFC 9068 §4 "the keys provided by the
        authorization server"; RFC 8725 §3.8, §3.10: never a `jwk`, `jku` or `x5u` header).
        `None` only under the `rs-unknown-kid-unverified` defect: nothing to verify with."""
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise TokenValidationError("the access token kid is not a string")
        try:
            if self.settings.defect("rs-trusts-header-keys"):
                supplied = await self.keys.key_from_header(header)
                if supplied is not None:
                    return supplied
            jwks = self.keys.issuer_jwks
            if self.settings.defect("rs-trusts-token-issuer"):
                iss = self._unverified_issuer(token)
                if iss != self.settings.issuer:
                    jwks = await self.keys.jwks_for_untrusted_issuer(iss)
            return await jwks.get_key(kid)
        except UnknownKeyError as exc:
            if self.settings.defect("rs-unknown-kid-unverified"):
                return None
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
        if self.settings.defect("rs-aud-array-unchecked") and isinstance(
            _peek_claims(token).get("aud"), list
        ):
            check_aud = False
        check_iss = not self.settings.defect("rs-trusts-token-issuer")
        audience = [self.settings.mcp_url]
        if self.settings.defect("rs-accepts-downstream-audience"):
            audience += [service.resource for service in self.settings.downstream]
        leeway = CLOCK_SKEW_SECONDS
        if self.settings.defect("rs-clock-skew-too-wide"):
            leeway = WIDE_CLOCK_SKEW_SECONDS
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
                audience=audience,
                issuer=self.settings.issuer,
                leeway=leeway,
            )
        except jwt.InvalidTokenError as exc:
            raise TokenValidationError(_describe(exc)) from exc
