"""Floor 2: floor 1 plus the Powertools Logger and Metrics, used as KeyGate's signature authorizer uses them.

The authorizer's own fixed stack (issue 15: no pydantic, no Tracer on its import path): one structured log
line with the request's context keys, and one metric flushed per invocation.
"""

import floor_aws
from aws_lambda_powertools import Logger, Metrics

logger = Logger(service="keygate")
metrics = Metrics(namespace="KeyGate", service="keygate")


@metrics.log_metrics
def handler(event, context):
    logger.append_keys(cold_start=True, function_name=context.function_name,
                       function_request_id=context.aws_request_id, correlation_id="cold-start")
    allowed = floor_aws.serve(event)
    logger.info("signature checked", extra={"user_id": allowed["principalId"]})
    metrics.add_metric(name="SignatureAllowed", unit="Count", value=1)
    return allowed
