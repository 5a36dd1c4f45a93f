"""Property-based fuzzing of the target's endpoints (hypothesis), seeded and bounded for CI.

Strategies build malformed requests by *mutating known-good ones* the suite already knows how
to make: `forms` (values and form-encoded requests), `jws` (compact JWS: access tokens, DPoP
proofs, ID-JAGs), then one module per target (`token_requests`, `token_exchange`,
`dpop_proofs`, `id_jags`, `access_tokens`, `mcp_requests`). Every mutation makes the request
invalid, so the properties are simple: never a 5xx, never a token (or a tool result, or a
downstream call), and an error in the form the endpoint's specification defines
(`properties`). `runner.fuzz` drives hypothesis, keeps only the count of examples and, for a
failure, the shrunk example's exchange as a minimal reproducer.
"""
