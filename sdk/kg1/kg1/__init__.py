"""KG1 request signing (KG1-HMAC-SHA256, KG1-ED25519): the one implementation KeyGate and its bots share.

- `canonical`: enc, the canonical path and query, the string to sign, the HMAC and the body digest;
- `client`: `sign_request` and `new_nonce`, the six X-KG-* headers for one request;
- `verify`: `parse_signed_headers` (check 1), `check_timestamp` (check 2), `verify_signature`
  (constant time), `verify_ed25519_signature`, `body_matches` (for backends) and `SigningError`;
- `ed25519`: Ed25519 keys, imported on their first use only: the public-key parser (standard library)
  and signing and verification (the `cryptography` package, the `ed25519` extra);
- `headers`: the header names, the receive window and clock bounds, the grammar of the values.

Standard library only (Ed25519 signing and verification aside), Python 3.10+, relative imports only
(the SDK ships this package as `keygate_client._kg1`). The specification is docs/signing.md in the KeyGate repository.
"""

from .canonical import (
    EMPTY_BODY_SHA256,
    SCHEME,
    canonical_path,
    canonical_query,
    content_sha256,
    enc,
    signature,
    string_to_sign,
)
from .client import check_recv_window, new_nonce, sign_request
from .headers import (
    DEFAULT_RECV_WINDOW_MS,
    ED25519_SIGNATURE_HEX_LENGTH,
    HEADER_API_KEY,
    HEADER_CONTENT_SHA256,
    HEADER_NONCE,
    HEADER_RECV_WINDOW,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    HMAC_SIGNATURE_HEX_LENGTH,
    MAX_CLOCK_AHEAD_MS,
    MAX_RECV_WINDOW_MS,
    SIGNED_HEADER_NAMES,
)
from .verify import (
    MALFORMED_HEADER,
    MISSING_HEADER,
    TIMESTAMP_OUT_OF_WINDOW,
    SignedHeaders,
    SigningError,
    body_matches,
    check_timestamp,
    expected_signature,
    parse_signed_headers,
    verify_ed25519_signature,
    verify_signature,
)

__all__ = [
    "DEFAULT_RECV_WINDOW_MS", "ED25519_SIGNATURE_HEX_LENGTH", "EMPTY_BODY_SHA256", "HEADER_API_KEY",
    "HEADER_CONTENT_SHA256", "HEADER_NONCE", "HEADER_RECV_WINDOW", "HEADER_SIGNATURE", "HEADER_TIMESTAMP",
    "HMAC_SIGNATURE_HEX_LENGTH", "MALFORMED_HEADER", "MAX_CLOCK_AHEAD_MS", "MAX_RECV_WINDOW_MS", "MISSING_HEADER",
    "SCHEME", "SIGNED_HEADER_NAMES", "TIMESTAMP_OUT_OF_WINDOW", "SignedHeaders", "SigningError", "body_matches",
    "canonical_path", "canonical_query", "check_recv_window", "check_timestamp", "content_sha256", "enc",
    "expected_signature", "new_nonce", "parse_signed_headers", "sign_request", "signature", "string_to_sign",
    "verify_ed25519_signature", "verify_signature",
]
