"""Client for APIs behind KeyGate's signature authorizer (KG1-HMAC-SHA256, KG1-ED25519; docs/signing.md).

- `sign(key_id, secret, method, path, query_pairs, body)`: the six X-KG-* headers
  (receive window 5000 ms unless `recv_window_ms` says otherwise; None leaves it out);
  an Ed25519 key signs with `private_key=` instead of a secret (`read_private_key(path)`);
- `HttpxAuth` / `RequestsAuth`: sign every request an httpx or requests client sends
  (install the `httpx` or `requests` extra);
- `ServerClock.sync(keygate_root)`: a clock corrected by its offset to KeyGate's (GET /v1/time on KeyGate's
  own API; `ClockSyncError` when that fails);
- `raise_for_refusal(response)`: a refusal (401 with its code) as `KeyGateAuthError`, whose `code`
  says which check refused the request and `fix` what to change (`raise_on_refusal=True` on the
  auth classes does it for every response);
- the `keygate-sign` command: a signed curl command, or the response with `--send`;
- the `keygate-keygen` command: a new Ed25519 key pair.

Standard library only (Ed25519 keys need the `ed25519` extra, cryptography); `_kg1` is a copy of
kg1 (sdk/kg1), the package the authorizer verifies with, made when the SDK is built.
"""

from typing import Any

from keygate_client._kg1 import SigningError
from keygate_client.core import (
    ClockSyncError,
    ServerClock,
    Signer,
    local_clock_ms,
    query_pairs,
    read_private_key,
    sign,
    signed_path,
)
from keygate_client.refusals import FIXES, KeyGateAuthError, raise_for_refusal

__all__ = ["FIXES", "ClockSyncError", "HttpxAuth", "KeyGateAuthError", "RequestsAuth", "ServerClock", "Signer",
           "SigningError", "local_clock_ms", "query_pairs", "raise_for_refusal", "read_private_key", "sign",
           "signed_path"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # The HTTP-library integrations import their library only when asked for.
    if name == "HttpxAuth":
        from keygate_client.httpx_auth import HttpxAuth
        return HttpxAuth
    if name == "RequestsAuth":
        from keygate_client.requests_auth import RequestsAuth
        return RequestsAuth
    raise AttributeError(f"module 'keygate_client' has no attribute {name!r}")
