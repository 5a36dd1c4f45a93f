"""The mutable state of one mock SaaS service, shared by its routes."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from mock_idp.keys import SigningKey, generate_signing_key, jwks
from mock_saas.dpop import ProofLog
from mock_saas.faults import Faults
from mock_saas.keys import TrustStore
from mock_saas.records import Records
from mock_saas.settings import SaasSettings

MAX_SEEN_USERS = 1000


@dataclass
class ServiceState:
    """Everything one service remembers; created fresh by `create_app`.

    `trust` holds the keys of the ASes whose access tokens the API accepts (the trusted
    issuers and the service's own AS), `idp_trust` those of the IdP whose ID-JAGs the
    service's own AS redeems.
    """

    settings: SaasSettings
    signing_key: SigningKey = field(default_factory=generate_signing_key)
    records: Records = field(default_factory=Records)
    faults: Faults = field(default_factory=Faults)
    proofs: ProofLog = field(default_factory=ProofLog)  # DPoP proof jtis seen lately
    seen_users: dict[str, None] = field(default_factory=dict)  # ordered set of subs
    used_jtis: dict[tuple[str, str], float] = field(default_factory=dict)  # -> expiry
    trust: TrustStore = field(init=False)
    idp_trust: TrustStore = field(init=False)

    def __post_init__(self) -> None:
        own = {self.settings.issuer: jwks(self.signing_key)}
        self.trust = TrustStore(self.settings.trusted_issuers, local=own)
        idp = self.settings.idp
        self.idp_trust = TrustStore((idp,) if idp is not None else ())

    def saw_user(self, sub: str) -> None:
        """Remember a user whose token was accepted (what an integration user sees)."""
        if sub not in self.seen_users and len(self.seen_users) < MAX_SEEN_USERS:
            self.seen_users[sub] = None

    def use_jti(self, issuer: str, jti: str, expires_at: float) -> bool:
        """Mark an assertion's `jti` used until it expires; False if it was already used
        (RFC 7523 section 3, item 7: replay protection)."""
        now = time.time()
        self.used_jtis = {k: exp for k, exp in self.used_jtis.items() if exp > now}
        if (issuer, jti) in self.used_jtis:
            return False
        self.used_jtis[(issuer, jti)] = expires_at
        return True

    async def aclose(self) -> None:
        await self.trust.aclose()
        await self.idp_trust.aclose()
