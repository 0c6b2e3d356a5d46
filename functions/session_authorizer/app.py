"""Lambda REQUEST authorizer for the management routes: validates the session JWT in `Authorization`.

Results are cached per Authorization header (template: SessionAuthorizerCacheTtl), so
an Allow covers every route of the stage for that token, and so does a refusal: a
Deny carrying its code (SESSION_EXPIRED, SESSION_WRONG_AUDIENCE, SESSION_INVALID),
which the ACCESS_DENIED Gateway Response answers 401. Only a failure to fetch the
JWKS raises (AUTHORIZER_CONFIGURATION_ERROR, 503). Log lines carry API Gateway's request id.
A request without the header never reaches this function: API Gateway answers 401 itself.
"""

from aws_lambda_powertools.logging import correlation_paths

from keygate import apigw, wiring
from keygate.errors import ErrorCode, KeyGateError
from keygate.observability import logger, tracer
from keygate.session import verify_session

_USE_BEARER = "Send the session token as 'Authorization: Bearer <session token>'."


def _authorization(event) -> str:
    for name, value in (event.get("headers") or {}).items():
        if isinstance(name, str) and name.lower() == "authorization" and isinstance(value, str):
            return value
    return ""


@tracer.capture_lambda_handler(capture_response=False)
@logger.inject_lambda_context(log_event=False, clear_state=True, correlation_id_path=correlation_paths.API_GATEWAY_REST)
def handler(event, context):
    scheme, _, token = _authorization(event).strip().partition(" ")
    try:
        if scheme.lower() != "bearer" or not token.strip():
            raise KeyGateError(ErrorCode.SESSION_INVALID, _USE_BEARER)
        session = verify_session(token.strip(), wiring.session())
    except KeyGateError as refused:
        if refused.code.status != 401:
            raise  # the JWKS cannot be fetched: the authorizer fails, AUTHORIZER_CONFIGURATION_ERROR answers 503
        code = ErrorCode.SESSION_INVALID if refused.code is ErrorCode.UNAUTHORIZED else refused.code
        # WARNING, as the signature authorizer's refusals: written at every LogLevel short of ERROR (operations.md)
        logger.warning("session refused",
                       extra={"error_code": code.value, "apigw_request_id": apigw.request_id(event)})
        return apigw.deny_policy("anonymous", event["methodArn"],
                                 {"error_code": code.value, "error_message": refused.message}, whole_api=True)
    # auth_time (when the user signed in) reaches the functions: a first passkey needs a recent sign-in.
    context = {"user_id": session.user_id}
    if session.auth_time is not None:
        context["auth_time"] = str(session.auth_time)
    return apigw.allow_policy(session.user_id, event["methodArn"], context, whole_api=True)
