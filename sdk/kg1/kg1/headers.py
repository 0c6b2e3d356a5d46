"""The six X-KG-* headers: names, receive window and clock bounds, and the grammar of their values."""

from __future__ import annotations

import re

HEADER_API_KEY = "X-KG-API-KEY"
HEADER_TIMESTAMP = "X-KG-TIMESTAMP"
HEADER_RECV_WINDOW = "X-KG-RECV-WINDOW"
HEADER_NONCE = "X-KG-NONCE"
HEADER_CONTENT_SHA256 = "X-KG-CONTENT-SHA256"
HEADER_SIGNATURE = "X-KG-SIGNATURE"
SIGNED_HEADER_NAMES = frozenset(name.lower() for name in (
    HEADER_API_KEY, HEADER_TIMESTAMP, HEADER_RECV_WINDOW, HEADER_NONCE, HEADER_CONTENT_SHA256, HEADER_SIGNATURE))

# The window a request without X-KG-RECV-WINDOW gets, and the one the SDK sends by default.
DEFAULT_RECV_WINDOW_MS = 5000
MAX_RECV_WINDOW_MS = 60000
# A timestamp may be at most this far ahead of the server's clock.
MAX_CLOCK_AHEAD_MS = 1000

# fullmatch everywhere: `$` would also accept a trailing newline.
# Digits of any count a clock could be mistaken for (microseconds, nanoseconds: check 2 then says how far
# ahead), bounded before int() converts them (it refuses more than 4,300 digits).
MAX_NUMBER_DIGITS = 64
TIMESTAMP_PATTERN = re.compile(rf"[0-9]{{1,{MAX_NUMBER_DIGITS}}}")
RECV_WINDOW_PATTERN = re.compile(rf"[0-9]{{1,{MAX_NUMBER_DIGITS}}}")  # leading zeros allowed: "000500" is 500
NONCE_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,64}")
HEX_SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
HMAC_SIGNATURE_PATTERN = HEX_SHA256_PATTERN
# Check 1 takes either length; check 4 refuses a length that does not fit the key's type (ALGORITHM_MISMATCH).
HMAC_SIGNATURE_HEX_LENGTH = 64
ED25519_SIGNATURE_HEX_LENGTH = 128
SIGNATURE_PATTERN = re.compile(r"[0-9a-f]{64}(?:[0-9a-f]{64})?")
KEY_ID_PATTERN = re.compile(r"[\x21-\x7e]{1,128}")  # visible ASCII; the id's format is the authorizer's check 3
