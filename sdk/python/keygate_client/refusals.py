"""What a refusal tells a bot: `KeyGateAuthError` with its `code`, and what to fix for each code.

Every refusal of KeyGate's signature authorizer reaches the bot as 401 with
`{"ok": false, "error": {"code", "message"}}` (docs/signing.md); the backend's
body check answers 401 BODY_DIGEST_MISMATCH the same way. `raise_for_refusal`
turns such a response (httpx, requests, or anything with a status and a JSON
body) into a `KeyGateAuthError`; `HttpxAuth` / `RequestsAuth` do it for every
response when given `raise_on_refusal=True`, and `keygate-sign --send` prints
the code and the fix.
"""

from __future__ import annotations

import json
from typing import Any

# Each code a bot can receive with a 401, and what to fix (the README's "When a request is refused").
FIXES: dict[str, str] = {
    "MISSING_HEADER": "send all five required X-KG-* headers (X-KG-RECV-WINDOW is optional)",
    "MALFORMED_HEADER": "send each X-KG-* header once, in its format (docs/signing.md, Headers)",
    "TIMESTAMP_OUT_OF_WINDOW": "sync your clock with GET /v1/time (ServerClock, --sync-clock) and send at once",
    "INVALID_KEY_ID": "send the key id exactly as issued",
    "UNKNOWN_KEY": "check the key id; a key created a moment ago is known within seconds",
    "KEY_REVOKED": "the key was revoked: create a new key",
    "KEY_EXPIRED": "the key has expired: create a new key",
    "ALGORITHM_MISMATCH": "sign with the key's own type: KG1-HMAC-SHA256 with its secret, or KG1-ED25519 with "
                          "its private key",
    "SIGNATURE_MISMATCH": "check the secret (or private key) and the string to sign: the path without the stage, "
                          "the canonical query, the digest of the exact body bytes",
    "IP_NOT_ALLOWED": "send from an address in the key's IP whitelist (the message names the one it came from)",
    "PERMISSION_DENIED": "use a key that holds the permission the message names",
    "NONCE_REUSED": "send a fresh X-KG-NONCE with every request (never retry with the same headers)",
    "BODY_DIGEST_MISMATCH": "send exactly the body bytes whose SHA-256 you signed",
}


class KeyGateAuthError(Exception):
    """A request KeyGate refused: `code` (e.g. TIMESTAMP_OUT_OF_WINDOW), `message` and `status` as received,
    and `fix`, what to change. Never carries a secret: the server's message never echoes one."""

    def __init__(self, code: str, message: str, status: int = 401) -> None:
        super().__init__(code, message, status)  # all three, so that pickle and copy rebuild it
        self.code = code
        self.message = message
        self.status = status

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    @property
    def fix(self) -> str:
        return FIXES.get(self.code, "see the message")


def refusal(status: int, body: bytes | str | Any) -> KeyGateAuthError | None:
    """The KeyGateAuthError a response stands for (a 401 with an error code), else None (a 401 without a code
    did not come from KeyGate's authorizer or its backends' body check)."""
    if status != 401:
        return None
    if isinstance(body, (bytes, str)):
        try:
            body = json.loads(body)
        except ValueError:
            return None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("code"), str) or not error["code"]:
        return None
    message = error.get("message")
    return KeyGateAuthError(error["code"], message if isinstance(message, str) else "", status)


def raise_for_refusal(response: Any) -> None:
    """Raise KeyGateAuthError if `response` (httpx or requests, or anything with `status_code` and `content`)
    is a refusal with its code; return quietly otherwise."""
    status = getattr(response, "status_code", None)
    if status is None:
        status = getattr(response, "status", None)
    if status != 401:
        return
    content = getattr(response, "content", None)
    if content is None:
        content = getattr(response, "text", "")
    found = refusal(int(status), content)
    if found is not None:
        raise found
