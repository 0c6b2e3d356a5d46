"""Scheduled: record the expiry notices that are due (7 days and 1 day ahead, and at the expiry); the stream
publishes each as ApiKeyExpiring / ApiKeyExpired (docs/architecture.md, "Expiry notices")."""

from dataclasses import asdict

from keygate import wiring
from keygate.observability import logger, metrics, tracer


@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
@logger.inject_lambda_context(log_event=False)
def handler(event, context):
    report = wiring.management().lifecycle.send_expiry_notices()
    metrics.add_metric(name="ExpiryNoticesSent", unit="Count", value=len(report.sent))
    if report.failed:
        # Failed notices stay due and are tried again by the next run; a failure of the whole run is retried
        # by Lambda and then lands in the dead-letter queue (its alarm).
        raise RuntimeError(f"{len(report.failed)} expiry notices could not be recorded; they stay due")
    return asdict(report)
