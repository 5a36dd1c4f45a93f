"""What every token endpoint grant handler shares: the context it is given, the error it
raises, the URNs it speaks and the no-store headers of every token response."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.responses import JSONResponse

from mock_idp.keys import SigningKey
from mock_idp.settings import IdpClient, IdpSettings
from mock_idp.store import Store

NO_STORE: dict[str, str] = {"Cache-Control": "no-store", "Pragma": "no-cache"}
BASIC_CHALLENGE: dict[str, str] = {"WWW-Authenticate": 'Basic realm="mock_idp"'}

# RFC 8693 section 3 token type identifiers and the grant types (RFC 8693 2.1, RFC 7523 2.1).
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
# draft-ietf-oauth-identity-assertion-authz-grant "IANA Considerations": token type and typ.
ID_JAG_TYPE = "urn:ietf:params:oauth:token-type:id-jag"
ID_JAG_TYP = "oauth-id-jag+jwt"


class TokenError(Exception):
    """An RFC 6749 section 5.2 error response."""

    def __init__(
        self,
        error: str,
        description: str,
        status_code: int = 400,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status_code = status_code
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        return JSONResponse(
            {"error": self.error, "error_description": self.description},
            status_code=self.status_code,
            headers={**NO_STORE, **self.headers},
        )


@dataclass(frozen=True)
class TokenContext:
    """What a grant handler gets: the authenticated client and the request parameters.

    `authenticated` is True when the client proved its secret (RFC 6749 section 2.3.1);
    False for a public client (section 2.1) or one a defect switch let in on its
    `client_id` alone.
    """

    settings: IdpSettings
    store: Store
    signing_key: SigningKey
    client: IdpClient
    params: Mapping[str, str]
    authenticated: bool = True


GrantHandler = Callable[[TokenContext], dict[str, Any]]
