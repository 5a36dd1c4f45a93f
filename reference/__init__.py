"""The bundled reference deployment: a conformant MCP authorization server and MCP server.

Every behaviour a check relies on sits behind a named defect switch (see `reference.defects`),
so the suite can prove that each check fails when the deployment breaks its requirement.
Only `conformance.embedded` starts it; no check imports it.
"""
