"""A mock enterprise IdP (OpenID Connect provider) for the reference deployment and the suite.

The reference authorization server federates user sign-in to it; the suite signs test users
in headlessly through its HTML login form. It also issues ID-JAGs by RFC 8693 token exchange
(draft-ietf-oauth-identity-assertion-authz-grant) for the resource authorization servers in
`IdpSettings.audiences`. See `mock_idp.app.create_app`.
"""

from mock_idp.app import create_app
from mock_idp.settings import (
    DEFAULT_USERS,
    IDP_DEFECTS,
    IdJagAudience,
    IdpClient,
    IdpSettings,
    IdpUser,
)

__all__ = [
    "DEFAULT_USERS",
    "IDP_DEFECTS",
    "IdJagAudience",
    "IdpClient",
    "IdpSettings",
    "IdpUser",
    "create_app",
]
