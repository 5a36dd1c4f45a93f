"""`--target embedded`: start the bundled reference deployment and describe it as a target.

The only module that knows how the reference is built. It starts the mock IdP, the
reference authorization server and the reference MCP server on loopback ephemeral ports,
with the requested defect switches on, and returns the target configuration a vendor would
otherwise write by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from conformance.config import TargetConfig, UserCredentials
from conformance.servers import ServerThread, bind_loopback, url_of


@dataclass
class EmbeddedDeployment:
    idp_issuer: str
    issuer: str
    mcp_url: str
    config: TargetConfig
    servers: list[ServerThread] = field(default_factory=list)

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()


def defect_catalogue() -> dict[str, tuple[tuple[str, ...], str, tuple[str, ...]]]:
    """name -> (requirement IDs, description, masked IDs) for every reference defect."""
    from reference.defects import DEFECTS

    return {d.name: (d.requirements, d.description, d.masks) for d in DEFECTS.values()}


def start(defects: frozenset[str] = frozenset()) -> EmbeddedDeployment:
    import mock_idp
    from reference import authorization_server, mcp_server
    from reference.settings import (
        BASIC_SCOPE,
        PRIVILEGED_SCOPE,
        PRIVILEGED_TOOL,
        ReferenceSettings,
    )

    idp_sock, as_sock, mcp_sock = bind_loopback(), bind_loopback(), bind_loopback()
    idp_issuer, issuer = url_of(idp_sock), url_of(as_sock)
    mcp_url = f"{url_of(mcp_sock)}/mcp"
    settings = ReferenceSettings(
        issuer=issuer,
        mcp_url=mcp_url,
        second_resource=f"{url_of(mcp_sock)}/reports-api",
        idp_issuer=idp_issuer,
        defects=defects,
    )
    idp_settings = mock_idp.IdpSettings(
        issuer=idp_issuer,
        clients=(
            mock_idp.IdpClient(
                settings.idp_client_id,
                settings.idp_client_secret,
                (f"{issuer}/callback",),
            ),
        ),
    )
    deployment = EmbeddedDeployment(
        idp_issuer=idp_issuer,
        issuer=issuer,
        mcp_url=mcp_url,
        config=TargetConfig(
            mcp_url=mcp_url,
            authorization_server=issuer,
            second_resource=settings.second_resource,
            allowed_hosts=("127.0.0.1",),
            basic_scope=BASIC_SCOPE,
            privileged_scope=PRIVILEGED_SCOPE,
            privileged_tool=PRIVILEGED_TOOL,
            registration="dcr",
            registration_endpoint=f"{issuer}/register",
            login_driver="mock-idp",
            users=tuple(
                UserCredentials(u.username, u.username, u.password) for u in idp_settings.users
            ),
            token_signer=f"{issuer}/_test/sign",
        ),
    )
    try:
        for app, sock, name in (
            (mock_idp.create_app(idp_settings), idp_sock, "mock-idp"),
            (authorization_server.create_app(settings), as_sock, "reference-as"),
            (mcp_server.create_app(settings), mcp_sock, "reference-mcp"),
        ):
            deployment.servers.append(ServerThread(app, sock, name).start())
    except BaseException:
        deployment.stop()
        raise
    return deployment
