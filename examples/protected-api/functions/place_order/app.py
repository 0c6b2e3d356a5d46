"""POST /v1/trade/orders: echoes the authorized caller and the verified order.

The signature authorizer has already checked the KG1 signature, key, IP and
`trade` permission; `verified_body` checks that the body is the one signed.
"""

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from keygate import api, apigw


class OrderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    symbol: str = Field(pattern=r"^[A-Z0-9]{2,10}-[A-Z0-9]{2,10}$")
    side: Literal["buy", "sell"]
    qty: Decimal = Field(gt=0, max_digits=20, decimal_places=8)


@api.api_handler
@api.verified_body
def handler(event):
    order = api.parse_body(OrderRequest, apigw.raw_body(event))
    caller = event["requestContext"]["authorizer"]
    return apigw.json_response(200, {
        "caller": {"user_id": caller.get("user_id"), "api_key": caller.get("key_id"),
                   "permissions": caller.get("permissions", "").split(",")},
        "order": {"symbol": order.symbol, "side": order.side, "qty": str(order.qty)},
        "status": "accepted",
    })
