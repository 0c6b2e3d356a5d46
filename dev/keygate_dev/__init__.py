"""Development tooling for KeyGate: never deployed, never imported by a Lambda.

`template`  reads template.yaml (tables, function environments, handlers) so
            tests and local mode use the stack's own definitions.
`identity`  a local identity provider: JWKS, session and step-up tokens.
`jwks_server` serves that JWKS on 127.0.0.1 so the production JWKS code path runs.
`loopback`  the small JSON server it uses (tests use it as a stand-in API too).
"""
