"""The defect catalogue: every switch that makes the reference deployment break a requirement.

`requirements` are the IDs the defect must make fail (or warn, for a SHOULD). `masks` are IDs
whose checks may lose their precondition under the defect and end as `error` or `skipped`
(never `failed`, never a changed pass): e.g. without discoverable metadata nothing that needs
the metadata can be judged. `"*"` masks every other requirement.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Defect:
    name: str
    requirements: tuple[str, ...]
    description: str
    masks: tuple[str, ...] = ()


_D = Defect
# Every check of a client ID metadata document client: skipped when the AS offers none.
_CIMD_CHECKS = (
    "CIMD-METADATA-ADVERTISED",
    "CIMD-FLOW-WORKS",
    "CIMD-CLIENT-ID-MATCH",
    "CIMD-REDIRECT-MATCH",
    "CIMD-NO-SYMMETRIC-AUTH",
    "CIMD-DOCUMENT-VALID",
    "CIMD-DOCUMENT-SIZE-LIMIT",
    "CIMD-URL-FORM",
    "CIMD-FETCH-STRICT",
    "CIMD-SSRF-GUARD",
)

_ALL: tuple[Defect, ...] = (
    # --- RFC 9728 protected resource metadata (MCP server) ---
    _D(
        "prm-not-discoverable",
        (
            "PRM-DISCOVERABLE",
            "PRM-WELLKNOWN-PATH-INSERTION",
            "RS-401-RESOURCE-METADATA",
            "RS-INSUFFICIENT-SCOPE-403",
        ),
        "The MCP server serves no protected resource metadata and names none in its challenges.",
        masks=("*",),
    ),
    _D(
        "prm-root-well-known-only",
        ("PRM-WELLKNOWN-PATH-INSERTION",),
        "Metadata is served only at the root well-known URL, not at the path-inserted one.",
    ),
    _D(
        "prm-wrong-content-type",
        ("PRM-RESPONSE-FORMAT",),
        "Metadata is served as text/plain and carries a null member.",
    ),
    _D(
        "prm-resource-trailing-slash",
        ("PRM-RESOURCE-EQUALS-ID",),
        "The metadata `resource` has a trailing slash the MCP URL does not have.",
    ),
    _D(
        "prm-resource-has-fragment",
        ("PRM-RESOURCE-FIELD", "PRM-RESOURCE-EQUALS-ID"),
        "The metadata `resource` carries a fragment.",
    ),
    _D(
        "prm-no-authorization-servers",
        ("PRM-AUTHZ-SERVERS",),
        "The metadata omits `authorization_servers`.",
        masks=("PRM-AUTHZ-SERVERS-RESOLVE",),
    ),
    _D(
        "prm-lists-unresolvable-as",
        ("PRM-AUTHZ-SERVERS-RESOLVE",),
        "The metadata lists a second authorization server that serves no metadata.",
    ),
    _D(
        "prm-no-scopes-supported",
        ("PRM-SCOPES-SUPPORTED",),
        "The metadata omits `scopes_supported`.",
    ),
    # --- RFC 6750 / MCP challenges (MCP server) ---
    _D(
        "rs-401-without-challenge",
        ("RS-401-WWW-AUTHENTICATE",),
        "A request without a token gets 401 with no WWW-Authenticate header.",
        masks=("RS-401-RESOURCE-METADATA", "RS-401-SCOPE-HINT"),
    ),
    _D(
        "rs-challenge-without-resource-metadata",
        ("RS-401-RESOURCE-METADATA",),
        "The 401 challenge omits `resource_metadata`.",
    ),
    _D("rs-challenge-without-scope", ("RS-401-SCOPE-HINT",), "The 401 challenge omits `scope`."),
    _D(
        "rs-accepts-missing-token",
        ("RS-MISSING-TOKEN-401",),
        "tools/list is answered without any access token.",
        masks=("RS-401-WWW-AUTHENTICATE", "RS-401-RESOURCE-METADATA", "RS-401-SCOPE-HINT"),
    ),
    _D(
        "rs-malformed-token-crash",
        ("RS-MALFORMED-TOKEN-401", "FUZZ-ACCESS-TOKEN"),
        "A token that is not a JWT makes the MCP server answer 500.",
    ),
    _D(
        "rs-ignores-expiry",
        ("RS-EXPIRED-TOKEN-401", "RS-CLOCK-SKEW-BOUNDED", "FUZZ-ACCESS-TOKEN"),
        "The MCP server does not check `exp` or `nbf`.",
    ),
    _D(
        "rs-ignores-audience",
        # The MCP server then also accepts tokens exchanged for downstream services.
        (
            "RS-WRONG-AUDIENCE-401",
            "TX-RESULT-AUDIENCE",
            "RS-AUD-ARRAY-401",
            "RS-REJECT-FOREIGN-TOKEN",
            "FUZZ-ACCESS-TOKEN",
        ),
        "The MCP server accepts tokens for any audience.",
    ),
    _D(
        "rs-trusts-token-issuer",
        ("RS-WRONG-ISSUER-401",),
        "The MCP server fetches verification keys from whatever issuer the token names.",
    ),
    _D(
        "rs-accepts-alg-none",
        ("RS-ALG-NONE-401",),
        "The MCP server accepts unsigned (`alg: none`) tokens.",
    ),
    _D(
        "rs-skips-signature-check",
        # Tokens signed by any key pass then, whatever key the header names or offers.
        (
            "RS-TAMPERED-TOKEN-401",
            "RS-UNKNOWN-KID-401",
            "RS-ISSUER-KEY-CONFUSION-401",
            "FUZZ-ACCESS-TOKEN",
        ),
        "The MCP server decodes tokens without verifying their signature.",
    ),
    _D(
        "rs-ignores-typ",
        ("RS-TYP-AT-JWT", "FUZZ-ACCESS-TOKEN"),
        "The MCP server accepts JWTs that are not typed `at+jwt`.",
    ),
    _D(
        "rs-no-scope-check",
        ("RS-SCOPE-ENFORCED", "RS-INSUFFICIENT-SCOPE-403"),
        "The privileged tool runs for a token without the privileged scope.",
    ),
    _D(
        "rs-accepts-query-token",
        ("RS-QUERY-TOKEN-IGNORED",),
        "The MCP server takes an access token from the `access_token` query parameter.",
    ),
    _D(
        "rs-scheme-case-sensitive",
        ("RS-SCHEME-CASE-INSENSITIVE",),
        "The MCP server accepts only the exact spelling `Bearer`.",
    ),
    _D(
        "rs-session-authenticates",
        ("RS-AUTH-EVERY-REQUEST",),
        "A request with a known Mcp-Session-Id is served without an access token.",
    ),
    # --- RFC 8414 authorization server metadata ---
    _D(
        "as-metadata-missing",
        ("ASM-DISCOVERY-AVAILABLE", "PRM-AUTHZ-SERVERS-RESOLVE"),
        "The authorization server serves no metadata at any well-known URL.",
        masks=("*",),
    ),
    _D(
        "as-metadata-issuer-mismatch",
        ("ASM-ISSUER-IDENTICAL", "PRM-AUTHZ-SERVERS-RESOLVE"),
        "The metadata `issuer` has a trailing slash the issuer identifier does not have.",
    ),
    _D(
        "as-metadata-missing-response-types",
        ("ASM-REQUIRED-FIELDS",),
        "The metadata omits `response_types_supported`.",
    ),
    _D(
        "as-metadata-no-pkce-methods",
        ("ASM-PKCE-S256-ADVERTISED",),
        "The metadata omits `code_challenge_methods_supported`.",
    ),
    _D(
        "as-metadata-legacy-grants",
        ("ASM-NO-LEGACY-GRANTS",),
        "The metadata advertises the implicit and password grants.",
    ),
    _D(
        "as-metadata-registration-hidden",
        ("ASM-REGISTRATION-ADVERTISED",),
        "Dynamic registration works but `registration_endpoint` is not advertised.",
    ),
    _D(
        "as-metadata-iss-flag-missing",
        ("ASM-ISS-PARAM-ADVERTISED",),
        "`iss` is sent in authorization responses but the metadata flag is absent.",
    ),
    _D(
        "as-metadata-no-jwks-uri",
        ("ASM-JWKS-URI",),
        "The metadata omits `jwks_uri` although access tokens are signed JWTs.",
        # Without jwks_uri the suite cannot read the public key to forge an HMAC with.
        masks=("JWTAT-HEADER", "RS-ALG-CONFUSION-401"),
    ),
    # --- authorization endpoint (OAuth 2.1 section 4.1, RFC 7636, RFC 9207, RFC 8707) ---
    _D(
        "authz-pkce-optional",
        ("AUTHZ-PKCE-REQUIRED",),
        "Authorization requests without `code_challenge` are accepted.",
    ),
    _D(
        "authz-unknown-challenge-method",
        ("AUTHZ-PKCE-METHOD-UNSUPPORTED",),
        "An unknown `code_challenge_method` is accepted.",
    ),
    _D(
        "authz-pkce-plain-accepted",
        ("AUTHZ-PKCE-PLAIN",),
        "`code_challenge_method=plain` is accepted.",
    ),
    _D(
        "authz-redirect-prefix-match",
        ("AUTHZ-REDIRECT-EXACT-MATCH",),
        "A redirect URI is accepted when a registered URI is a prefix of it.",
    ),
    _D(
        "authz-redirects-to-unregistered-uri",
        ("AUTHZ-BAD-REDIRECT-NO-REDIRECT",),
        "An error for an unregistered redirect URI is sent by redirect to that URI.",
    ),
    _D(
        "authz-loopback-port-strict",
        ("AUTHZ-LOOPBACK-PORT",),
        "A loopback redirect URI must match the registered port.",
    ),
    _D(
        "authz-state-dropped-on-error",
        ("AUTHZ-STATE-ECHO",),
        "Error redirects do not carry `state`.",
    ),
    _D(
        "authz-no-iss",
        ("AUTHZ-ISS-PARAM", "ASM-ISS-PARAM-ADVERTISED"),
        "Authorization responses omit `iss` although the metadata flag says it is sent.",
    ),
    _D(
        "authz-error-as-json",
        ("AUTHZ-ERROR-REDIRECT",),
        "Authorization request errors are returned as a JSON body instead of a redirect.",
        masks=("AUTHZ-STATE-ECHO", "AUTHZ-PKCE-METHOD-UNSUPPORTED", "AUTHZ-NO-IMPLICIT"),
    ),
    _D(
        "authz-implicit-enabled",
        ("AUTHZ-NO-IMPLICIT",),
        "`response_type=token` returns an access token in the redirect.",
    ),
    _D(
        "authz-duplicate-params-accepted",
        ("AUTHZ-DUPLICATE-PARAMS",),
        "A repeated authorization parameter is accepted (the first value wins).",
    ),
    _D(
        "authz-resource-not-validated",
        ("AUTHZ-RESOURCE-PARAM",),
        "A `resource` with a fragment or for an unknown server is accepted.",
    ),
    # --- token endpoint (OAuth 2.1 section 3.2, 4.1.3) ---
    _D(
        "token-pkce-not-verified",
        ("TOKEN-PKCE-VERIFY", "FUZZ-TOKEN-ENDPOINT"),
        "The token endpoint does not check `code_verifier`.",
    ),
    _D(
        "token-code-reusable",
        ("TOKEN-CODE-SINGLE-USE", "TOKEN-CODE-REUSE-REVOCATION"),
        "An authorization code can be redeemed more than once.",
        # Not single-use even sequentially, so a race cannot be judged.
        masks=("TOKEN-CODE-CONCURRENT-REDEMPTION",),
    ),
    _D(
        "token-code-reuse-keeps-tokens",
        ("TOKEN-CODE-REUSE-REVOCATION",),
        "A replayed code is refused, but the tokens issued from it stay valid.",
    ),
    _D(
        "token-code-not-bound-to-client",
        ("TOKEN-CODE-BOUND-CLIENT",),
        "A code can be redeemed by a client other than the one it was issued to.",
    ),
    _D(
        "token-redirect-uri-not-checked",
        ("TOKEN-REDIRECT-URI", "FUZZ-TOKEN-ENDPOINT"),
        "A `redirect_uri` sent to the token endpoint is not compared with the one authorized.",
    ),
    _D(
        "token-password-grant-enabled",
        ("TOKEN-NO-PASSWORD-GRANT",),
        "The resource owner password credentials grant issues tokens.",
    ),
    _D(
        "token-audience-ignores-resource",
        ("TOKEN-RESOURCE-AUDIENCE",),
        "Access tokens name the MCP server as audience, whatever `resource` was requested.",
        masks=("RS-WRONG-AUDIENCE-401", "TX-SUBJECT-AUDIENCE-BOUND"),
    ),
    _D(
        "token-invalid-target-wrong-code",
        ("TOKEN-RESOURCE-INVALID-TARGET",),
        "A token request for a resource outside the grant fails with `invalid_request`.",
    ),
    _D(
        "token-scope-escalation",
        ("TOKEN-SCOPE-HANDLING",),
        "Unknown requested scopes are copied into the token.",
    ),
    _D(
        "token-response-missing-token-type",
        # A DPoP-bound token's response must say `token_type: DPoP` (RFC 9449 §5).
        ("TOKEN-RESPONSE-FIELDS", "DPOP-AS-BOUND-TOKEN"),
        "Successful token responses omit `token_type`.",
    ),
    _D(
        "token-response-cacheable",
        ("TOKEN-RESPONSE-NO-STORE",),
        "Token responses carry no `Cache-Control: no-store`.",
    ),
    _D(
        "token-error-not-json",
        ("TOKEN-ERROR-FORMAT", "FUZZ-TOKEN-ENDPOINT", "FUZZ-TOKEN-EXCHANGE", "FUZZ-ID-JAG"),
        "Token endpoint errors are plain text with status 500.",
    ),
    _D(
        "token-confidential-client-unauthenticated",
        ("TOKEN-CLIENT-AUTH",),
        "A confidential client can redeem a code with its `client_id` alone.",
    ),
    # --- RFC 7591 dynamic client registration ---
    _D(
        "dcr-returns-200",
        ("DCR-REGISTER-201",),
        "Successful registrations answer 200 instead of 201.",
    ),
    _D(
        "dcr-accepts-any-redirect",
        ("DCR-INVALID-REDIRECT-URI",),
        "Registration accepts non-https, non-loopback, relative and fragment redirect URIs.",
    ),
    _D(
        "dcr-accepts-unsafe-metadata",
        ("DCR-INVALID-CLIENT-METADATA",),
        "Registration accepts and echoes the password grant and unknown auth methods.",
    ),
    # --- RFC 9068 JWT access tokens ---
    _D(
        "jwt-typ-plain-jwt",
        ("JWTAT-HEADER", "RS-TYP-AT-JWT"),
        "Access tokens are typed `JWT` and the MCP server accepts that type.",
    ),
    _D(
        "jwt-missing-client-id",
        ("JWTAT-CLAIMS",),
        "Access tokens carry no `client_id` claim.",
        # The MCP server learns the client from the token, so its audit events cannot name it.
        masks=("AUDIT-DOWNSTREAM-EVENT", "AUDIT-EXCHANGE-EVENT", "AUDIT-FAILURE-EVENT"),
    ),
    _D("at-long-lived", ("AT-SHORT-LIVED",), "Access tokens live for a day."),
    # --- RFC 8693 token exchange at the reference AS (second hop, exchange model 1) ---
    _D(
        "tx-grant-unsupported",
        ("TX-GRANT-SUPPORTED",),
        "The token endpoint refuses the token-exchange grant.",
        masks=("*",),
    ),
    _D(
        "tx-grant-not-advertised",
        ("TX-GRANT-ADVERTISED",),
        "Metadata leaves the token-exchange grant out of `grant_types_supported`.",
    ),
    _D(
        "tx-subject-token-type-optional",
        ("TX-SUBJECT-REQUIRED",),
        "An exchange without `subject_token_type` is processed as if it named an access token.",
    ),
    _D(
        "tx-unknown-subject-token-type-accepted",
        ("TX-SUBJECT-TOKEN-TYPE", "FUZZ-TOKEN-EXCHANGE"),
        "Any `subject_token_type` is accepted; the token is read as an access token.",
    ),
    _D(
        "tx-subject-token-not-validated",
        ("TX-SUBJECT-VALIDATED", "FUZZ-TOKEN-EXCHANGE"),
        "Subject tokens are decoded without checking signature, issuer or expiry.",
    ),
    _D(
        "tx-subject-audience-ignored",
        ("TX-SUBJECT-AUDIENCE-BOUND",),
        "A subject token meant for another resource is exchanged all the same.",
    ),
    _D(
        "tx-actor-pairing-unchecked",
        ("TX-ACTOR-PAIRING",),
        "`actor_token` and `actor_token_type` are not required to come together.",
    ),
    _D(
        "tx-invalid-target-wrong-code",
        ("TX-INVALID-TARGET",),
        "An exchange for an unknown resource or audience fails with `invalid_request`.",
    ),
    _D(
        "tx-response-missing-issued-token-type",
        ("TX-RESPONSE-SHAPE",),
        "Exchange responses omit `issued_token_type`.",
    ),
    _D(
        "tx-token-audience-includes-mcp",
        ("TX-RESULT-AUDIENCE", "HOP2-DOWNSTREAM-AUDIENCE"),
        "Exchanged tokens name the MCP server as a second audience.",
    ),
    _D(
        "tx-service-identity-sub",
        ("TX-USER-SCOPED-SUB", "HOP2-USER-SCOPED"),
        "Exchanged tokens carry the MCP server's client id as `sub` instead of the user.",
        masks=("HOP2-USER-ISOLATION",),  # no data comes back for alice to compare
    ),
    _D(
        "tx-scope-escalation",
        ("TX-NO-PRIVILEGE-ESCALATION",),
        "An exchange grants requested scopes beyond the downstream policy.",
    ),
    _D(
        "tx-long-lived-token",
        ("TX-LIFETIME-BOUNDED", "HOP2-DOWNSTREAM-SHORT-LIVED"),
        "Exchanged tokens live for a day, outliving their subject token.",
    ),
    # --- ID-JAG issuance at the mock enterprise IdP (token exchange, IdP role) ---
    _D(
        "idp-wrong-issued-token-type",
        ("IDJAG-IDP-ISSUES",),
        "The IdP answers an ID-JAG request with `token_type` Bearer and the access token type.",
        masks=("IDJAG-RAS-GRANT",),
    ),
    _D(
        "idp-metadata-silent",
        ("IDJAG-IDP-METADATA",),
        "IdP metadata does not advertise ID-JAG issuance or the token-exchange grant.",
    ),
    _D(
        "idp-idjag-typ-jwt",
        ("IDJAG-IDP-JWT-FORMAT",),
        "ID-JAGs are typed `JWT` instead of `oauth-id-jag+jwt`.",
        masks=("*",),
    ),
    _D(
        "idp-idjag-client-id-unmapped",
        ("IDJAG-IDP-CLIENT-ID",),
        "ID-JAGs name the client by its IdP-side id, not its id at the resource AS.",
        masks=("*",),
    ),
    _D(
        "idp-subject-not-validated",
        ("IDJAG-IDP-SUBJECT-VALIDATED",),
        "Subject ID tokens are read without checking signature, issuer or expiry.",
    ),
    _D(
        "idp-subject-audience-unchecked",
        ("IDJAG-IDP-SUBJECT-AUD",),
        "An ID token issued to another client is accepted as the subject.",
    ),
    _D(
        "idp-audience-not-required",
        ("IDJAG-IDP-AUDIENCE",),
        "`audience` may be omitted (a default is used) and unknown audiences are accepted.",
    ),
    _D(
        "idp-scope-not-narrowed",
        ("IDJAG-IDP-GRANTED-REFLECTED",),
        "Requested scopes outside policy are copied into the ID-JAG.",
    ),
    _D(
        "idp-resource-dropped",
        ("IDJAG-IDP-RESOURCE",),
        "ID-JAGs leave out the requested `resource`.",
    ),
    _D(
        "idp-exchange-without-client-auth",
        ("IDJAG-IDP-CLIENT-AUTH",),
        "The IdP issues ID-JAGs to requests that name a client without authenticating it.",
    ),
    _D(
        "idp-idjag-long-lived",
        ("IDJAG-IDP-SHORT-LIVED",),
        "ID-JAGs live for a day.",
    ),
    _D(
        "idp-self-redeem",
        ("IDJAG-IDP-NOT-SELF-REDEEMABLE",),
        "The IdP's own token endpoint grants access tokens for its ID-JAGs (jwt-bearer).",
    ),
    # --- ID-JAG redemption at the reference AS (RFC 7523 jwt-bearer, resource AS role) ---
    _D(
        "ras-profile-not-advertised",
        ("IDJAG-RAS-METADATA",),
        "Metadata omits `authorization_grant_profiles_supported`.",
    ),
    _D(
        "ras-response-cacheable",
        ("IDJAG-RAS-GRANT",),
        "jwt-bearer token responses carry no `Cache-Control: no-store`.",
    ),
    _D(
        "ras-refresh-token-issued",
        ("IDJAG-RAS-NO-REFRESH",),
        "The jwt-bearer grant also returns a refresh token.",
    ),
    _D(
        "ras-typ-unchecked",
        ("IDJAG-RAS-TYP", "FUZZ-ID-JAG"),
        "Assertions of any JWT type (e.g. an ID token) are accepted as ID-JAGs.",
    ),
    _D(
        "ras-signature-unchecked",
        ("IDJAG-RAS-SIGNATURE-ISSUER", "FUZZ-ID-JAG"),
        "Assertion signatures and issuers are not verified.",
    ),
    _D(
        "ras-aud-unchecked",
        ("IDJAG-RAS-AUD", "FUZZ-ID-JAG"),
        "Assertions addressed to another authorization server are accepted.",
    ),
    _D(
        "ras-client-id-unbound",
        ("IDJAG-RAS-CLIENT-MATCH", "FUZZ-ID-JAG"),
        "Any authenticated client may redeem an ID-JAG issued for another client.",
    ),
    _D(
        "ras-expiry-unchecked",
        ("IDJAG-RAS-EXPIRY", "FUZZ-ID-JAG"),
        "Expired and not-yet-valid assertions are accepted.",
    ),
    _D(
        "ras-jti-replay-accepted",
        ("IDJAG-RAS-JTI-REPLAY",),
        "The same ID-JAG can be redeemed again while it is unexpired.",
        # Without replay detection there is no check for a race to defeat: the race check skips.
        masks=("IDJAG-RAS-JTI-RACE",),
    ),
    _D(
        "ras-scope-not-intersected",
        ("IDJAG-RAS-SCOPE-RESOURCE",),
        "The requested scope is granted even where the ID-JAG does not carry it.",
    ),
    _D(
        "rs-accepts-idp-assertions",
        ("IDJAG-RS-REJECTS-ASSERTIONS",),
        "The MCP server accepts any JWT signed by the enterprise IdP as an access token.",
    ),
    # --- The MCP server's downstream calls (second hop) ---
    _D(
        "hop2-token-passthrough",
        (
            "HOP2-NO-PASSTHROUGH",
            "HOP2-DOWNSTREAM-AUDIENCE",
            "HOP2-DOWNSTREAM-SCOPES",
            "HOP2-DOWNSTREAM-DPOP",
        ),
        "The connectors forward the client's own access token to the downstream API.",
        # The services refuse the forwarded token, so no data comes back to compare.
        masks=(
            "AUDIT-EXCHANGE-EVENT",
            "AUDIT-DOWNSTREAM-EVENT",
            "HOP2-USER-ISOLATION",
            "HOP2-IDJAG-AUDIENCE",
            "HOP2-EXPIRY-RENEWS",
        ),
    ),
    _D(
        "hop2-static-api-key",
        (
            "HOP2-DOWNSTREAM-AUDIENCE",
            "HOP2-USER-SCOPED",
            "HOP2-DOWNSTREAM-SCOPES",
            "HOP2-DOWNSTREAM-SHORT-LIVED",
            "HOP2-NOT-SHARED",
            "HOP2-USER-ISOLATION",
            "HOP2-DOWNSTREAM-DPOP",
        ),
        "The connectors call the downstream APIs with one integration-user API key.",
        # The key never expires, so there is no token to renew.
        masks=("AUDIT-EXCHANGE-EVENT", "HOP2-IDJAG-AUDIENCE", "HOP2-EXPIRY-RENEWS"),
    ),
    _D(
        "hop2-token-cache-not-per-user",
        ("HOP2-USER-SCOPED", "HOP2-NOT-SHARED", "HOP2-USER-ISOLATION"),
        "Downstream tokens are cached per service, so one user's token serves the next.",
        masks=("AUDIT-EXCHANGE-EVENT",),
    ),
    _D(
        "hop2-overbroad-downstream-scope",
        ("HOP2-DOWNSTREAM-SCOPES",),
        "The connectors ask for every scope the downstream service offers.",
    ),
    _D(
        "hop2-idjag-reused-downstream",
        ("HOP2-IDJAG-AUDIENCE",),
        "The ID-JAG connector presents an ID-JAG addressed to the MCP server's own AS.",
        masks=("*",),
    ),
    _D(
        "hop2-failure-as-transport-error",
        ("HOP2-FAILURE-TOOL-ERROR",),
        "A downstream failure surfaces as an HTTP 500 instead of a tool error.",
        masks=("HOP2-FAILURE-NO-LEAK", "HOP2-FAILURE-ISOLATED", "AUDIT-FAILURE-EVENT"),
    ),
    _D(
        "hop2-failure-leaks-detail",
        ("HOP2-FAILURE-NO-LEAK",),
        "A downstream failure's tool error repeats the downstream response and token.",
    ),
    _D(
        "hop2-outage-blocks-other-calls",
        ("HOP2-FAILURE-ISOLATED",),
        "While one downstream service fails, every other MCP request gets 503.",
    ),
    # --- Audit trail of the second hop ---
    _D(
        "audit-exchange-not-logged",
        ("AUDIT-EXCHANGE-EVENT",),
        "Token exchanges and downstream token grants leave no audit event.",
    ),
    _D(
        "audit-downstream-call-not-logged",
        ("AUDIT-DOWNSTREAM-EVENT",),
        "Successful downstream API calls leave no audit event.",
    ),
    _D(
        "audit-failures-not-logged",
        ("AUDIT-FAILURE-EVENT",),
        "Failed downstream calls leave no audit event.",
    ),
    # --- Refresh tokens, expiry and introspection (issue 4) ---
    _D(
        "rt-resource-param-refused",
        ("RT-GRANT-WORKS",),
        "A refresh that carries `resource`, as MCP clients send it, fails with `invalid_target`, "
        "even for the grant's own resource.",
        # Every other refresh check starts from a successful refresh (with `resource`).
        masks=(
            "RT-PUBLIC-ROTATION",
            "RT-OLD-INVALID-AFTER-ROTATION",
            "RT-REUSE-REVOKES-FAMILY",
            "RT-BOUND-TO-CLIENT",
            "RT-SCOPE-NO-WIDEN",
            "RT-RESOURCE-BOUND",
            "RT-REVOKED-REJECTED",
            "RT-EXPIRED-REJECTED",
            "RT-CONCURRENT-REDEMPTION",
            "INTROSPECT-INACTIVE",
            "INTROSPECT-INACTIVE-NO-DETAILS",
            "REVOKE-RT-CASCADE",
        ),
    ),
    _D(
        "rt-not-rotated",
        ("RT-PUBLIC-ROTATION",),
        "A refresh returns the same refresh token again, and it stays valid.",
        # Without a rotated token there is no superseded one to replay or race.
        masks=(
            "RT-OLD-INVALID-AFTER-ROTATION",
            "RT-REUSE-REVOKES-FAMILY",
            "RT-CONCURRENT-REDEMPTION",
        ),
    ),
    _D(
        "rt-old-still-valid",
        ("RT-OLD-INVALID-AFTER-ROTATION",),
        "A refresh issues a new refresh token but the one presented stays valid.",
        # A replay is then no reuse, and the old token is not single-use even sequentially.
        masks=("RT-REUSE-REVOKES-FAMILY", "RT-CONCURRENT-REDEMPTION"),
    ),
    _D(
        "rt-reuse-keeps-family",
        ("RT-REUSE-REVOKES-FAMILY",),
        "Replaying a rotated refresh token is refused, but its family stays valid.",
    ),
    _D(
        "rt-not-bound-to-client",
        ("RT-BOUND-TO-CLIENT",),
        "Any client may redeem a refresh token issued to another client.",
    ),
    _D(
        "rt-confidential-client-unauthenticated",
        ("RT-BOUND-TO-CLIENT",),
        "A confidential client can refresh with its `client_id` alone.",
    ),
    _D(
        "rt-scope-widening",
        ("RT-SCOPE-NO-WIDEN",),
        "A refresh grants whatever scope is requested, beyond the original grant.",
    ),
    _D(
        "rt-resource-not-bound",
        ("RT-RESOURCE-BOUND",),
        "A refresh issues a token for whatever resource is requested, beyond the grant.",
    ),
    _D(
        "rt-revocation-ignored",
        ("RT-REVOKED-REJECTED",),
        "The revocation endpoint answers 200 for a refresh token but does not revoke it.",
        # The introspection and cascade checks start from a refresh token that was revoked.
        masks=("INTROSPECT-INACTIVE", "INTROSPECT-INACTIVE-NO-DETAILS", "REVOKE-RT-CASCADE"),
    ),
    _D(
        "rt-never-expires",
        ("RT-EXPIRED-REJECTED",),
        "Refresh tokens never expire, whatever lifetime is configured.",
    ),
    _D(
        "rt-race-double-redeem",
        ("RT-CONCURRENT-REDEMPTION",),
        "The refresh grant awaits a store round trip between checking and marking a token "
        "used, so concurrent redemptions of one refresh token all succeed.",
    ),
    _D(
        "revocation-unknown-token-error",
        ("REVOKE-RT",),
        "Revoking an unknown or invalid token answers 400 instead of 200.",
    ),
    _D(
        "revocation-keeps-access-tokens",
        ("REVOKE-RT-CASCADE",),
        "Revoking a refresh token leaves the access tokens of its grant valid.",
    ),
    _D(
        "introspection-reports-inactive-as-active",
        ("INTROSPECT-INACTIVE",),
        "Introspection describes expired, revoked and rotated tokens as active.",
        # Checks that confirm a revocation by introspection cannot see it take effect.
        masks=("REVOKE-RT-CASCADE", "TX-SUBJECT-VALIDATED"),
    ),
    _D(
        "introspection-inactive-details",
        ("INTROSPECT-INACTIVE-NO-DETAILS",),
        "Introspection of an inactive token adds members saying why it is inactive.",
    ),
    # --- DPoP at the authorization server (RFC 9449 §5, §8, §10) ---
    _D(
        "as-dpop-unsupported",
        ("DPOP-SUPPORTED",),
        "The AS neither advertises DPoP nor binds tokens: DPoP headers are ignored.",
        # Without DPoP at the AS there are no bound tokens: every other DPoP check skips.
        masks=(
            "DPOP-AS-METADATA-ALGS",
            "DPOP-AS-BOUND-TOKEN",
            "DPOP-AS-PROOF-TYP-ALG",
            "DPOP-AS-PROOF-KEY",
            "DPOP-AS-PROOF-WELLFORMED",
            "DPOP-AS-PROOF-HTM-HTU",
            "DPOP-AS-PROOF-IAT",
            "DPOP-AS-PROOF-JTI-REPLAY",
            "DPOP-AS-NONCE",
            "DPOP-AS-INVALID-PROOF-ERROR",
            "DPOP-AS-DPOP-JKT",
            "DPOP-AS-RT-BOUND",
            "DPOP-AS-CLIENT-REQUIRES-DPOP",
            "DPOP-AS-ALL-GRANTS",
            "DPOP-RS-METADATA-ALGS",
            "DPOP-RS-SCHEME-AND-PROOF",
            "DPOP-RS-ATH",
            "DPOP-RS-BEARER-DOWNGRADE",
            "DPOP-RS-PROOF-TYP-ALG",
            "DPOP-RS-PROOF-WELLFORMED",
            "DPOP-RS-PROOF-HTM-HTU",
            "DPOP-RS-PROOF-IAT",
            "DPOP-RS-PROOF-JTI-REPLAY",
            "DPOP-RS-JTI-RACE",
            "DPOP-RS-CHALLENGE",
            "FUZZ-DPOP-PROOF",
        ),
    ),
    _D(
        "as-dpop-metadata-symmetric",
        ("DPOP-AS-METADATA-ALGS",),
        "The AS metadata lists HS256 among dpop_signing_alg_values_supported.",
    ),
    _D(
        "as-dpop-token-type-bearer",
        ("DPOP-AS-BOUND-TOKEN",),
        "DPoP-bound access tokens are issued with token_type Bearer.",
    ),
    _D(
        "as-dpop-typ-unchecked",
        ("DPOP-AS-PROOF-TYP-ALG", "FUZZ-DPOP-PROOF"),
        "The token endpoint accepts DPoP proofs whatever their typ.",
    ),
    _D(
        "as-dpop-signature-unchecked",
        ("DPOP-AS-PROOF-KEY", "FUZZ-DPOP-PROOF"),
        "The token endpoint does not verify a DPoP proof's signature with its jwk.",
    ),
    _D(
        "as-dpop-claims-unchecked",
        ("DPOP-AS-PROOF-WELLFORMED",),
        "The token endpoint takes the first of several DPoP headers and a proof without jti.",
    ),
    _D(
        "as-dpop-htu-unchecked",
        ("DPOP-AS-PROOF-HTM-HTU", "FUZZ-DPOP-PROOF"),
        "The token endpoint ignores a DPoP proof's htm and htu.",
    ),
    _D(
        "as-dpop-iat-unchecked",
        ("DPOP-AS-PROOF-IAT", "FUZZ-DPOP-PROOF"),
        "The token endpoint accepts DPoP proofs whatever their iat.",
    ),
    _D(
        "as-dpop-jti-replay",
        ("DPOP-AS-PROOF-JTI-REPLAY",),
        "The token endpoint keeps no record of DPoP proofs seen: a proof can be replayed.",
    ),
    _D(
        "as-dpop-nonce-ignored",
        ("DPOP-AS-NONCE",),
        "The token endpoint demands a DPoP nonce but accepts any value.",
    ),
    _D(
        "as-dpop-error-invalid-request",
        ("DPOP-AS-INVALID-PROOF-ERROR",),
        "Invalid DPoP proofs at the token endpoint get invalid_request, not invalid_dpop_proof.",
    ),
    _D(
        "as-dpop-jkt-ignored",
        ("DPOP-AS-DPOP-JKT",),
        "A code requested with dpop_jkt is redeemed with any DPoP key, or none.",
    ),
    _D(
        "as-dpop-refresh-unbound",
        ("DPOP-AS-RT-BOUND",),
        "A public client's refresh token is redeemed without a proof of its DPoP key.",
    ),
    _D(
        "as-dpop-client-flag-ignored",
        ("DPOP-AS-CLIENT-REQUIRES-DPOP",),
        "Clients registered with dpop_bound_access_tokens get Bearer tokens without a proof.",
    ),
    _D(
        "as-dpop-exchange-unbound",
        ("DPOP-AS-ALL-GRANTS",),
        "Token exchange ignores the DPoP proof's key and issues a Bearer token.",
    ),
    # --- DPoP at the MCP server (RFC 9449 §7, MCP DPoP extension) ---
    _D(
        "prm-no-dpop-algs",
        ("DPOP-RS-METADATA-ALGS",),
        "The protected resource metadata omits `dpop_signing_alg_values_supported`.",
    ),
    _D(
        "rs-dpop-bearer-downgrade",
        ("DPOP-RS-BEARER-DOWNGRADE",),
        "A DPoP-bound access token is accepted with the Bearer scheme, without a proof.",
    ),
    _D(
        "rs-dpop-key-binding-ignored",
        ("DPOP-RS-SCHEME-AND-PROOF",),
        "The MCP server does not compare the proof key with the token's `cnf.jkt`.",
    ),
    _D(
        "rs-dpop-ath-ignored",
        ("DPOP-RS-ATH", "FUZZ-DPOP-PROOF"),
        "The MCP server does not check the proof's `ath` against the access token.",
    ),
    _D(
        "rs-dpop-typ-unchecked",
        ("DPOP-RS-PROOF-TYP-ALG", "FUZZ-DPOP-PROOF"),
        "The MCP server accepts proofs whose `typ` is not `dpop+jwt`.",
    ),
    _D(
        "rs-dpop-claims-unchecked",
        ("DPOP-RS-PROOF-WELLFORMED",),
        "The MCP server reads the first of several DPoP headers, takes a private `jwk` and "
        "accepts proofs that lack required claims.",
    ),
    _D(
        "rs-dpop-htu-unchecked",
        ("DPOP-RS-PROOF-HTM-HTU", "FUZZ-DPOP-PROOF"),
        "The MCP server does not compare the proof's `htu` with the request URI.",
    ),
    _D(
        "rs-dpop-iat-unchecked",
        ("DPOP-RS-PROOF-IAT", "FUZZ-DPOP-PROOF"),
        "The MCP server accepts proofs whatever their `iat`.",
    ),
    _D(
        "rs-dpop-jti-replay",
        ("DPOP-RS-PROOF-JTI-REPLAY",),
        "The MCP server keeps no `jti` cache: a proof can be replayed within its window.",
        masks=("DPOP-RS-JTI-RACE",),
    ),
    _D(
        "rs-dpop-jti-race",
        ("DPOP-RS-JTI-RACE",),
        "The `jti` cache checks, awaits a shared-cache round trip, then records: concurrent "
        "uses of one proof all pass (sequential replays are still refused).",
    ),
    _D(
        "rs-dpop-challenge-without-algs",
        ("DPOP-RS-CHALLENGE",),
        "The MCP server's DPoP challenges carry no `algs` parameter.",
    ),
    _D(
        "prm-lists-offline-access",
        ("RS-NO-OFFLINE-ACCESS",),
        "The MCP server lists `offline_access` in its metadata `scopes_supported` and in the "
        "scope of its 401 challenge.",
    ),
    # --- Second hop under expiry, downstream DPoP, ID-JAG races ---
    _D(
        "hop2-no-retry-on-expiry",
        ("HOP2-EXPIRY-RENEWS",),
        "A downstream 401 (expired token) ends the tool call; no fresh token, no retry.",
    ),
    _D(
        "hop2-retry-loop",
        ("HOP2-EXPIRY-NO-LOOP",),
        "A downstream 401 is retried with a fresh token up to five times.",
    ),
    _D(
        "hop2-retry-falls-back-to-api-key",
        ("HOP2-EXPIRY-NO-FALLBACK", "HOP2-EXPIRY-RENEWS"),
        "After a downstream 401 the connector retries with the integration-user API key.",
    ),
    _D(
        "hop2-dpop-proof-reused",
        ("HOP2-DOWNSTREAM-DPOP",),
        "The connector makes one DPoP proof per downstream token and sends it on every call.",
    ),
    _D(
        "hop2-dpop-proof-relayed",
        ("HOP2-NO-DPOP-PROOF-FORWARDING",),
        "Calls to Bearer services carry a DPoP proof of the inbound MCP request (htu the MCP "
        "endpoint, ath over the client's token), as relaying the client's proof would.",
    ),
    _D(
        "ras-jti-race",
        ("IDJAG-RAS-JTI-RACE",),
        "The resource AS awaits a replay-cache round trip between checking and recording an "
        "ID-JAG's jti, so concurrent redemptions all succeed (sequential replays are refused).",
    ),
    # --- issue 5: token attacks at the MCP server ---
    _D(
        "rs-alg-from-header",
        ("RS-ALG-CONFUSION-401",),
        "The MCP server verifies with the algorithm the token header names: an HS256 token is "
        "checked as an HMAC keyed with the issuer's RSA public key in PEM form.",
    ),
    _D(
        "rs-unknown-kid-unverified",
        # The fuzzer's tokens re-signed under an unknown kid are served too.
        ("RS-UNKNOWN-KID-401", "FUZZ-ACCESS-TOKEN"),
        "A token whose `kid` matches no published key is decoded without verifying its signature.",
    ),
    _D(
        "rs-trusts-header-keys",
        ("RS-ISSUER-KEY-CONFUSION-401",),
        "The MCP server verifies with a key the token header supplies: an embedded `jwk`, or the "
        "key fetched from `jku` or `x5u`.",
    ),
    _D(
        "rs-clock-skew-too-wide",
        ("RS-CLOCK-SKEW-BOUNDED",),
        "The MCP server allows ten minutes of clock skew on `exp`, `nbf` and `iat`.",
    ),
    _D(
        "rs-aud-array-unchecked",
        ("RS-AUD-ARRAY-401",),
        "The MCP server checks `aud` only when it is a string; an array passes unchecked.",
    ),
    _D(
        "rs-accepts-id-tokens",
        ("RS-ID-TOKEN-REFUSED",),
        "A JWT from the AS with ID token claims (`nonce`, `azp`) and no `at+jwt` type is "
        "validated as an OpenID Connect ID token (audience: any client) and accepted.",
    ),
    _D(
        "rs-accepts-downstream-audience",
        # The token the AS exchanges for a downstream service is then accepted too.
        ("RS-REJECT-FOREIGN-TOKEN", "TX-RESULT-AUDIENCE"),
        "The MCP server accepts the audiences of the downstream services it calls as its own.",
    ),
    _D(
        "rs-accepts-form-token",
        ("RS-BODY-TOKEN-IGNORED",),
        "The MCP server takes an access token from an `access_token` form-encoded body parameter.",
    ),
    # --- issue 5: authorization endpoint attacks ---
    _D(
        "authz-redirect-normalised-match",
        ("AUTHZ-REDIRECT-EXACT-MATCH",),
        "Redirect URIs are compared as parsed URLs: scheme and host case, userinfo and "
        "fragment are ignored.",
    ),
    _D(
        "authz-loopback-host-confusion",
        ("AUTHZ-LOOPBACK-PORT",),
        "Loopback redirect URIs match on path alone: localhost, 127.0.0.1 and [::1] are one host.",
    ),
    _D(
        "authz-validates-params-before-redirect-uri",
        ("AUTHZ-BAD-REDIRECT-NO-REDIRECT",),
        "Request errors (scope, response type, PKCE) are checked before the redirect URI and "
        "redirected to it unchecked.",
    ),
    _D(
        "authz-missing-params-defaulted",
        ("AUTHZ-REQUIRED-PARAMS",),
        "A missing `response_type` is taken as `code`, a missing `redirect_uri` as the first "
        "registered one.",
    ),
    _D(
        "authz-pkce-challenge-unchecked",
        ("AUTHZ-PKCE-CHALLENGE-SYNTAX",),
        "Any `code_challenge` string is accepted, whatever its length and characters.",
    ),
    _D(
        "authz-iss-trailing-slash",
        ("AUTHZ-ISS-MATCHES-ISSUER",),
        "Authorization responses carry `iss` with a trailing slash the issuer identifier does "
        "not have.",
    ),
    _D(
        "token-pkce-downgrade",
        ("TOKEN-PKCE-DOWNGRADE",),
        "Confidential clients may omit PKCE, and a `code_verifier` sent for a code issued "
        "without a challenge is ignored.",
    ),
    _D(
        "token-pkce-verifier-unchecked",
        ("TOKEN-PKCE-VERIFIER-SYNTAX",),
        "A `code_verifier` of any length and characters is accepted when its hash matches.",
    ),
    # --- issue 5: token endpoint and registration attacks ---
    _D(
        "token-code-race-double-redeem",
        ("TOKEN-CODE-CONCURRENT-REDEMPTION",),
        "The code grant awaits a store round trip between checking and marking a code used, so "
        "concurrent redemptions of one code all succeed (a sequential replay is refused).",
    ),
    _D(
        "token-public-client-secret-ignored",
        ("TOKEN-CLIENT-AUTH",),
        "A client secret sent for a public client is not checked (there is none on file), so "
        "any secret passes as client authentication.",
    ),
    _D(
        "token-auth-method-not-enforced",
        ("TOKEN-CLIENT-AUTH-METHOD",),
        "A client's secret is accepted by any method, whatever token_endpoint_auth_method it "
        "registered (client_secret_post for a client_secret_basic client).",
    ),
    _D(
        "token-repeated-params-accepted",
        ("TOKEN-DUPLICATE-PARAMS",),
        "The token endpoint reads a parameter repeated with the same value as sent once "
        "(only conflicting repeats are refused).",
    ),
    _D(
        "token-get-accepted",
        ("TOKEN-POST-ONLY",),
        "The token endpoint serves GET and reads URI query parameters as request parameters.",
    ),
    _D(
        "dcr-rejects-unknown-metadata",
        ("DCR-UNKNOWN-METADATA-IGNORED",),
        "Registration refuses client metadata members it does not understand "
        "(invalid_client_metadata) instead of ignoring them.",
    ),
    _D(
        "dcr-application-type-not-enforced",
        ("DCR-APPLICATION-TYPE",),
        "Registration records and echoes application_type but checks no redirect URI against "
        "it: a web client registers a loopback http redirect URI.",
    ),
    # --- issue 5: client ID metadata documents ---
    _D(
        "cimd-unsupported",
        ("CIMD-SUPPORTED",),
        "The AS does not offer client ID metadata documents: no metadata flag, and a URL "
        "client_id is an unknown client.",
        masks=_CIMD_CHECKS,
    ),
    _D(
        "cimd-not-advertised",
        ("CIMD-METADATA-ADVERTISED", "CIMD-SUPPORTED"),
        "The AS fetches client ID metadata documents but its metadata omits "
        "client_id_metadata_document_supported.",
        masks=_CIMD_CHECKS,
    ),
    _D(
        "cimd-token-endpoint-unaware",
        ("CIMD-FLOW-WORKS",),
        "Only the authorization endpoint resolves URL client_ids; the token endpoint answers "
        "invalid_client for them.",
    ),
    _D(
        "cimd-client-id-not-checked",
        ("CIMD-CLIENT-ID-MATCH",),
        "A client ID metadata document is accepted whatever client_id it names.",
    ),
    _D(
        "cimd-redirect-uri-not-checked",
        ("CIMD-REDIRECT-MATCH",),
        "For a client ID metadata document client, any redirect URI the request names is "
        "accepted, listed in the document or not.",
    ),
    _D(
        "cimd-shared-secret-accepted",
        ("CIMD-NO-SYMMETRIC-AUTH",),
        "Documents declaring client_secret_* methods or carrying a client_secret are accepted.",
    ),
    _D(
        "cimd-document-structure-lax",
        ("CIMD-DOCUMENT-VALID",),
        "Documents are read leniently: any content type, client_name optional, a single "
        "redirect_uris string taken as a list.",
    ),
    _D(
        "cimd-document-size-unbounded",
        ("CIMD-DOCUMENT-SIZE-LIMIT",),
        "Client ID metadata documents are read whatever their size.",
    ),
    _D(
        "cimd-url-form-not-checked",
        ("CIMD-URL-FORM",),
        "Any http(s) URL is taken as a client ID metadata document URL: http, no path, dot "
        "segments, a fragment, userinfo.",
    ),
    _D(
        "cimd-fetch-lax",
        ("CIMD-FETCH-STRICT",),
        "Document fetches follow redirects and take any non-5xx answer with a JSON body.",
    ),
    _D(
        "cimd-no-ssrf-guard",
        ("CIMD-SSRF-GUARD",),
        "Documents are fetched from any address, loopback and private ones included.",
    ),
    # --- issue 5: robustness under fuzzing ---
    _D(
        "token-redirect-uri-compare-crash",
        ("FUZZ-TOKEN-ENDPOINT",),
        "The token endpoint compares redirect_uri with hmac.compare_digest on strings, which "
        "raises on non-ASCII input: a 500 instead of invalid_grant.",
    ),
    _D(
        "tx-subject-token-type-prefix-match",
        ("FUZZ-TOKEN-EXCHANGE",),
        "Token exchange takes any subject_token_type that starts with a supported type URI "
        "(a prefix match), so an unknown type that extends one gets a token.",
    ),
    _D(
        "as-dpop-jwk-type-crash",
        ("FUZZ-DPOP-PROOF",),
        "The token endpoint's proof validation checks that the jwk header is present, not that "
        "it is an object: a proof whose jwk is a string, number or array gets a 500.",
    ),
    _D(
        "ras-exp-numeric-string",
        ("FUZZ-ID-JAG",),
        "The resource AS reads an ID-JAG's exp with int(), so a numeric string (no NumericDate) "
        "is taken as a valid expiry and the ID-JAG redeemed.",
    ),
    _D(
        "rs-token-typ-type-crash",
        ("FUZZ-ACCESS-TOKEN",),
        "The MCP server lower-cases the token's typ header before checking its type: a typ "
        "that is a number, array or object gets a 500 instead of 401 invalid_token.",
    ),
    _D(
        "rs-jsonrpc-batch-crash",
        ("FUZZ-MCP-REQUEST",),
        "The MCP server's scope check reads the request body as one JSON-RPC object, so a "
        "JSON array (a batch) gets a 500 instead of an error.",
    ),
)

DEFECTS: dict[str, Defect] = {d.name: d for d in _ALL}
