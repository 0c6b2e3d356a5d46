"""SQS (the rules of the exchange's bus): onboarding and trade events, verified and recorded (keygate.exchange)."""

from keygate import wiring
from keygate.exchange import process_batch
from keygate.observability import logger, metrics, tracer


@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
@logger.inject_lambda_context(log_event=False)
def handler(event, context):
    return process_batch(wiring.exchange_events(), event)
