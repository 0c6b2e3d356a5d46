"""Lambda REQUEST authorizer: KG1 request signatures (docs/signing.md).

How each outcome reaches the bot, as API Gateway decides it, is in
docs/architecture.md ("Errors"): an Allow for this request's method ARN only,
with the context a backend reads; for every refusal a Deny carrying its code
and message, which the ACCESS_DENIED Gateway Response answers 401. Only an AWS
fault raises (AUTHORIZER_FAILURE, 503), never an allow.
"""

from aws_lambda_powertools.logging import correlation_paths

from keygate import apigw, authorizer
from keygate.observability import logger, metrics

_authorizer: authorizer.SignatureAuthorizer | None = None


def use(instance: authorizer.SignatureAuthorizer | None) -> None:
    """The seam for tests and benchmarks: serve with `instance` (e.g. on injected clocks); None builds
    a fresh one from the environment on the next request, as a new warm instance would."""
    global _authorizer
    _authorizer = instance


def _signature_authorizer() -> authorizer.SignatureAuthorizer:
    # One per warm instance: its caches are what keep the hot path fast.
    global _authorizer
    if _authorizer is None:
        _authorizer = authorizer.from_environment()
    return _authorizer


@metrics.log_metrics
@logger.inject_lambda_context(log_event=False, clear_state=True, correlation_id_path=correlation_paths.API_GATEWAY_REST)
def handler(event, context):
    decision = _signature_authorizer().authorize(apigw.signed_request(event))
    logger.info("signature checked", extra={
        "allowed": decision.allowed, "status": decision.status,
        "error_code": decision.code.value if decision.code else "OK",
        "api_key": decision.key_id, "user_id": decision.user_id, "apigw_request_id": apigw.request_id(event)})
    # Every refusal is a 401 (the code is in the log line): the signature-refusals alarm reads this metric
    metrics.add_metric(name="SignatureAllowed" if decision.allowed else "SignatureRefused401", unit="Count", value=1)
    if decision.allowed:
        return apigw.allow_policy(decision.user_id, event["methodArn"], {
            "user_id": decision.user_id, "key_id": decision.key_id,
            "permissions": ",".join(decision.permissions)}, whole_api=False)
    return apigw.deny_policy(decision.user_id or "anonymous", event["methodArn"],
                             {"error_code": decision.code.value, "error_message": decision.message})
