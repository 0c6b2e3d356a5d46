"""Scheduled: delete secrets of revoked keys and of creates that never committed."""

from dataclasses import asdict

from keygate import wiring
from keygate.observability import logger, metrics, tracer


@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
@logger.inject_lambda_context(log_event=False)
def handler(event, context):
    report = wiring.management().lifecycle.run_secret_janitor()
    # SecretCleanupFailed feeds an alarm (docs/operations.md): failed deletions stay queued for the next run.
    metrics.add_metric(name="SecretCleanupDeleted", unit="Count", value=len(report.deleted))
    metrics.add_metric(name="SecretCleanupFailed", unit="Count", value=len(report.failed))
    return asdict(report)
