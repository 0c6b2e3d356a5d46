"""The operators' AWS_IAM route in the local gateway: API Gateway's SigV4 check, with one local operator.

API Gateway verifies a SigV4 signature (service execute-api) and puts the caller's identity in the request
context; the stack's resource policy then admits OperatorPrincipals only. Locally there is one principal, the
local operator, whose credentials are the emulator's (`keygate admin revoke` signs with them against the local
server): a request signed with them is verified here exactly as botocore signed it, and reaches the function
with the local operator's ARN as `requestContext.identity.userArn`.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from keygate_dev.emulation import EMULATOR_CREDENTIALS

LOCAL_OPERATOR_ARN = "arn:aws:iam::123456789012:user/keygate-local-operator"
LOCAL_OPERATOR_CREDENTIALS = Credentials(EMULATOR_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                                         EMULATOR_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
_AUTHORIZATION = re.compile(r"AWS4-HMAC-SHA256 Credential=([^/,\s]+)/(\d{8})/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request,"
                            r"\s*SignedHeaders=([a-z0-9;-]+),\s*Signature=([0-9a-f]{64})")


def is_signed(headers: Mapping[str, str]) -> bool:
    return any(name.lower() == "authorization" for name in headers)


def caller(method: str, url: str, headers: Mapping[str, str], body: bytes) -> str | None:
    """The local operator's ARN if the request carries its valid SigV4 signature (execute-api), else None."""
    lowered = {name.lower(): value for name, value in headers.items()}
    found = _AUTHORIZATION.fullmatch(lowered.get("authorization", "").strip())
    if found is None or found.group(4) != "execute-api" or "x-amz-date" not in lowered:
        return None
    access_key, _, region, service, signed, signature = found.groups()
    if access_key != LOCAL_OPERATOR_CREDENTIALS.access_key:
        return None
    request = AWSRequest(method=method, url=url, data=body,
                         headers={name: lowered.get(name, "") for name in signed.split(";")})
    request.context["timestamp"] = lowered["x-amz-date"]
    signer = SigV4Auth(LOCAL_OPERATOR_CREDENTIALS, service, region)
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    return LOCAL_OPERATOR_ARN if hmac.compare_digest(expected, signature) else None
