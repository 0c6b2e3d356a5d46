"""Lambda TOKEN authorizer for the management routes: validates the session JWT.

Results are cached by token (template: SessionAuthorizerCacheTtl), so the
policy allows every route of the stage for that token.
"""

from keygate import apigw, wiring
from keygate.errors import ErrorCode, KeyGateError
from keygate.observability import logger, tracer
from keygate.session import verify_session_token


@tracer.capture_lambda_handler(capture_response=False)
@logger.inject_lambda_context(log_event=False)
def handler(event, context):
    scheme, _, token = (event.get("authorizationToken") or "").partition(" ")
    try:
        if scheme.lower() != "bearer":
            raise KeyGateError(ErrorCode.UNAUTHORIZED, "Use 'Authorization: Bearer <session token>'.")
        user_id = verify_session_token(token.strip(), wiring.session())
    except KeyGateError as refused:
        if refused.code.status != 401:
            raise  # the JWKS cannot be fetched: the authorizer fails, AUTHORIZER_FAILURE answers 503
        logger.info("session refused", extra={"error_code": refused.code.value})
        raise apigw.AuthorizerDenied() from None
    return apigw.allow_policy(user_id, event["methodArn"], {"user_id": user_id}, whole_api=True)
