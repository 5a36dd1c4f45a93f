"""A mock enterprise IdP (OpenID Connect provider) for the reference deployment and the suite.

The reference authorization server federates user sign-in to it; the suite signs test users
in headlessly through its HTML login form. See `mock_idp.app.create_app`.
"""

from mock_idp.app import create_app
from mock_idp.settings import DEFAULT_USERS, IdpClient, IdpSettings, IdpUser

__all__ = ["DEFAULT_USERS", "IdpClient", "IdpSettings", "IdpUser", "create_app"]
