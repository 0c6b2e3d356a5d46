"""`keygate admin revoke`: the security team's revocation, SigV4-signed with botocore
(docs/runbooks/leaked-key-or-secret.md).

    keygate admin revoke --user alice [--api-key kgk_...] --reason "posted in a forum" [--api-url URL] [--region R]

With --api-url (a deployed stage's URL, e.g. https://abc.execute-api.eu-west-1.amazonaws.com/prod), the
request is signed with the caller's AWS credentials (the default chain: AWS_PROFILE, SSO, a role), which must
be one of the stack's OperatorPrincipals and allowed execute-api:Invoke on the route. Without it, the running
local server is used, with the local operator's credentials (keygate_dev.local_iam).
"""

from __future__ import annotations

import json
from typing import Any

import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

PATH = "/v1/admin/revocations"
TIMEOUT_SECONDS = 30


def signed_headers(url: str, body: bytes, credentials: Any, region: str) -> dict[str, str]:
    """The headers of a POST of `body` to `url`, signed for API Gateway (service execute-api)."""
    request = AWSRequest(method="POST", url=url, data=body, headers={"Content-Type": "application/json"})
    SigV4Auth(credentials, "execute-api", region).add_auth(request)
    return dict(request.headers.items())


def revoke(api_url: str, *, user_id: str, api_key: str | None, reason: str, credentials: Any,
           region: str) -> requests.Response:
    body = json.dumps({"user_id": user_id, "reason": reason, **({"api_key": api_key} if api_key else {})}).encode()
    url = api_url.rstrip("/") + PATH
    return requests.post(url, data=body, headers=signed_headers(url, body, credentials, region),
                         timeout=TIMEOUT_SECONDS)
