"""Scheduled: delete secrets of revoked keys and of creates that never committed."""

from dataclasses import asdict

from keygate import wiring
from keygate.observability import logger, tracer


@tracer.capture_lambda_handler(capture_response=False)
@logger.inject_lambda_context(log_event=False)
def handler(event, context):
    return asdict(wiring.management().lifecycle.run_secret_janitor())
