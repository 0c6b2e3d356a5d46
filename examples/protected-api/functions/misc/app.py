"""ANY /v1/misc/{proxy+}: a catch-all route, as many backends have one.

A greedy resource needs `withdraw` unless KeyGate's SafeProxyResources lists it
(docs/signing.md, check 6: fail closed), because a router behind it may send
spellings such as `/v1/misc/../wallet/withdrawals` to a withdrawal handler. The
local stage does not list it, so only withdrawal keys get here.
"""

from keygate import api, apigw


@api.api_handler
@api.verified_body
def handler(event):
    caller = event["requestContext"]["authorizer"]
    return apigw.json_response(200, {
        "caller": {"user_id": caller.get("user_id"), "api_key": caller.get("key_id")},
        "route": f"{event['httpMethod']} {event['resource']}",
        "proxy": (event.get("pathParameters") or {}).get("proxy"),
    })
