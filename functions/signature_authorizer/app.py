"""Lambda REQUEST authorizer: KG1-HMAC-SHA256 request signatures (docs/signing.md).

How each outcome reaches the bot (API Gateway's rules for Lambda authorizers):
- allow: an Allow policy for this request's method ARN only (the authorizer
  cache is off, every signature is unique), with a flat context the backend
  reads (user_id, key_id, permissions);
- 401: only by raising Exception("Unauthorized"); API Gateway then answers
  its UNAUTHORIZED Gateway Response and the specific code cannot reach the
  bot, so it is logged here with API Gateway's request id;
- 403: a Deny policy whose context carries error_code / error_message, which
  the ACCESS_DENIED Gateway Response renders;
- AWS fault: any other exception, which API Gateway answers with the
  AUTHORIZER_FAILURE Gateway Response (503 + Retry-After). Never an allow.
"""

from keygate import api
from keygate.authorizer import SignatureAuthorizer
from keygate.config import get_config
from keygate.observability import logger, metrics, tracer

_authorizer: SignatureAuthorizer | None = None


def _signature_authorizer() -> SignatureAuthorizer:
    # One per warm instance: its caches are what keep the hot path fast.
    global _authorizer
    if _authorizer is None:
        _authorizer = SignatureAuthorizer(get_config())
    return _authorizer


@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
@logger.inject_lambda_context(log_event=False, clear_state=True)
def handler(event, context):
    decision = _signature_authorizer().authorize(api.signed_request(event))
    logger.info("signature checked", extra={
        "allowed": decision.allowed, "status": decision.status, "error_code": decision.code,
        "api_key": decision.key_id, "user_id": decision.user_id,
        "apigw_request_id": (event.get("requestContext") or {}).get("requestId")})
    metrics.add_metric(name="SignatureAllowed" if decision.allowed else f"SignatureRefused{decision.status}",
                       unit="Count", value=1)
    if decision.allowed:
        return api.allow_policy(decision.user_id, event["methodArn"], {
            "user_id": decision.user_id, "key_id": decision.key_id,
            "permissions": ",".join(decision.permissions)}, whole_api=False)
    if decision.status == 403:
        return api.deny_policy(decision.user_id or "anonymous", event["methodArn"],
                               {"error_code": decision.code, "error_message": decision.message})
    raise api.AuthorizerDenied()
