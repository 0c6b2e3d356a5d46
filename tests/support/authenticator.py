"""The software WebAuthn authenticator lives in keygate_dev.authenticator (`keygate dev step-up` keeps one in
the local state directory); the tests import it from here."""

from keygate_dev.authenticator import (  # noqa: F401  # re-exported for the tests
    EDDSA,
    ES256,
    CredentialExcluded,
    NoCredential,
    SoftAuthenticator,
    SoftCredential,
    b64url,
    cose_key,
    from_b64url,
)
