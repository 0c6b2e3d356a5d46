"""POST /v1/wallet/withdrawals and POST /v1/accounts/{account_id}/withdrawals: a withdrawal request.

Both are declared in KeyGate's WithdrawalRoutes, so the signature authorizer lets
in only keys holding `withdraw` (which KeyGate gives only with a narrow IP
whitelist), whatever the path's spelling: it decides from the route API Gateway
matched (docs/signing.md, check 6). `verified_body` checks the body is the one signed.
"""

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from keygate import api, apigw


class WithdrawalRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    asset: str = Field(pattern=r"^[A-Z0-9]{2,10}$")
    amount: Decimal = Field(gt=0, max_digits=20, decimal_places=8)
    address: str = Field(min_length=8, max_length=128, pattern=r"^[A-Za-z0-9:_-]+$")


@api.api_handler
@api.verified_body
def handler(event):
    withdrawal = api.parse_body(WithdrawalRequest, apigw.raw_body(event))
    caller = event["requestContext"]["authorizer"]
    return apigw.json_response(202, {
        "caller": {"user_id": caller.get("user_id"), "api_key": caller.get("key_id"),
                   "permissions": caller.get("permissions", "").split(",")},
        "route": event["resource"],
        "account_id": (event.get("pathParameters") or {}).get("account_id"),
        "withdrawal": {"asset": withdrawal.asset, "amount": str(withdrawal.amount), "address": withdrawal.address},
        "status": "queued",
    })
