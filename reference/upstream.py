"""The deployment's record of each user's enterprise sign-in, shared by its AS and MCP server.

The reference AS federates sign-in to the enterprise IdP and keeps the ID token the IdP
issued for the user. The reference MCP server, which belongs to the same deployment (one
relying party at the IdP), uses that ID token as the `subject_token` when it asks the IdP
for an ID-JAG (second hop, exchange model 2). A real deployment keeps this in its session
database; here it is one in-memory object handed to both apps by the launcher.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class UpstreamIdentity:
    user: str  # the IdP `sub`, which is also the `sub` of this deployment's access tokens
    id_token: str
    expires_at: float


@dataclass
class UpstreamIdentities:
    _by_user: dict[str, UpstreamIdentity] = field(default_factory=dict)

    def remember(self, user: str, id_token: str, expires_at: float) -> None:
        """Keep the newest ID token of `user` (called at the end of a federated sign-in)."""
        self._by_user[user] = UpstreamIdentity(user, id_token, expires_at)

    def id_token(self, user: str) -> str | None:
        """The user's unexpired ID token, or None (the user must sign in again)."""
        identity = self._by_user.get(user)
        if identity is None or identity.expires_at <= time.time():
            return None
        return identity.id_token
