"""Lambda REQUEST authorizer: KG1 request signatures (docs/signing.md).

How each outcome reaches the bot, as API Gateway decides it, is in
docs/architecture.md ("Errors"): an Allow for this request's method ARN only,
with the context a backend reads; for every refusal a Deny carrying its code
and message, which the ACCESS_DENIED Gateway Response answers 401. Only an AWS
fault raises (API Gateway's AUTHORIZER_CONFIGURATION_ERROR, 503), never an allow.
"""

import logging

from keygate.cold_start import frozen_imports

with frozen_imports():  # docs/architecture.md, "Cold start"
    from keygate import apigw, authorizer
    from keygate.observability import flush_added_metrics, logger, metrics

_authorizer: authorizer.SignatureAuthorizer | None = None
_cold_start = True


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


def _log_context(event, context) -> None:
    """The keys Powertools' inject_lambda_context gives every log line (the function, its request id, the cold
    start, API Gateway's request id as the correlation id) and its debug sampling (POWERTOOLS_LOGGER_SAMPLE_RATE),
    at a fraction of its cost per request: this function fronts every bot request of the exchange
    (docs/performance.md, "Warm path")."""
    global _cold_start
    if _cold_start:
        logger.append_keys(function_name=context.function_name, function_memory_size=context.memory_limit_in_mb,
                           function_arn=context.invoked_function_arn)
    elif logger.sampling_rate:
        logger.refresh_sample_rate_calculation()  # a fresh draw per warm request, as Powertools does
    logger.append_keys(cold_start=_cold_start, function_request_id=context.aws_request_id,
                       correlation_id=apigw.request_id(event))
    _cold_start = False


def _decision_line(decision: authorizer.Decision, event) -> dict:
    return {"allowed": decision.allowed, "status": decision.status,
            "error_code": decision.code.value if decision.code else "OK",
            "api_key": decision.key_id, "user_id": decision.user_id, "apigw_request_id": apigw.request_id(event)}


def handler(event, context):
    _log_context(event, context)
    try:
        decision = _signature_authorizer().authorize(apigw.signed_request(event))
        if decision.allowed:
            # The API's access log records allowed requests; a Logger line and a metric here would cost every
            # bot request more than the checks do (docs/architecture.md, "Observability of the signature
            # authorizer").
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("signature checked", extra=_decision_line(decision, event))
            return apigw.allow_policy(decision.user_id, event["methodArn"], {
                "user_id": decision.user_id, "key_id": decision.key_id,
                "permissions": ",".join(decision.permissions)}, whole_api=False)
        # WARNING: written at every LogLevel short of ERROR (docs/architecture.md, same section)
        logger.warning("signature checked", extra=_decision_line(decision, event))
        # Every refusal is a 401 (its code is in the line): the signature-refusals alarm reads this metric
        metrics.add_metric(name="SignatureRefused401", unit="Count", value=1)
        return apigw.deny_policy(decision.user_id or "anonymous", event["methodArn"],
                                 {"error_code": decision.code.value, "error_message": decision.message})
    finally:
        flush_added_metrics()
