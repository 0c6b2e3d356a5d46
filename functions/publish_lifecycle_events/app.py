"""The keys table's stream (audit entries and expiry notices, filtered by the event source mapping) ->
EventBridge: every committed lifecycle change, at least once (docs/architecture.md, "Lifecycle events out")."""

from keygate import wiring
from keygate.observability import logger, metrics, tracer


@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
@logger.inject_lambda_context(log_event=False)
def handler(event, context):
    report = wiring.event_publishing().publish_stream_batch(event)
    metrics.add_metric(name="LifecycleEventsPublished", unit="Count", value=len(report.published))
    if report.failed_sequence_number is None:
        return {"batchItemFailures": []}
    # Lambda retries the batch from this record (ReportBatchItemFailures); what was published before it stays.
    metrics.add_metric(name="LifecycleEventsRetried", unit="Count", value=1)
    logger.warning("lifecycle events not accepted; the stream resumes at the first one",
                   extra={"published": len(report.published)})
    return {"batchItemFailures": [{"itemIdentifier": report.failed_sequence_number}]}
