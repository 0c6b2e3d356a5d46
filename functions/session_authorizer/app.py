"""Lambda TOKEN authorizer for the management routes: validates the session JWT.

Results are cached by token (template: SessionAuthorizerCacheTtl), so the
policy allows every route of the stage for that token.
"""

from keygate import api
from keygate.auth import verify_session_token
from keygate.errors import Unauthorized
from keygate.observability import logger, tracer


@tracer.capture_lambda_handler(capture_response=False)
@logger.inject_lambda_context(log_event=False)
def handler(event, context):
    scheme, _, token = (event.get("authorizationToken") or "").partition(" ")
    try:
        if scheme.lower() != "bearer":
            raise Unauthorized("Use 'Authorization: Bearer <session token>'.")
        user_id = verify_session_token(token.strip())
    except Unauthorized as refused:
        logger.info("session refused", extra={"error_code": refused.code})
        raise api.AuthorizerDenied() from None
    # Any other error (the JWKS cannot be fetched) fails the authorizer, which the
    # AUTHORIZER_FAILURE gateway response answers with 503.
    return api.allow_policy(user_id, event["methodArn"], {"user_id": user_id}, whole_api=True)
