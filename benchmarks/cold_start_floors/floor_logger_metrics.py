"""Floor 2: floor 1 plus the Powertools Logger and Metrics, used as KeyGate's signature authorizer uses them.

The authorizer's own fixed stack (issue 15: no pydantic, no Tracer on its import path): both created at import,
the request's context keys appended to the Logger, and nothing written for an allowed request (the API's access
log records it: docs/architecture.md, "Observability of the signature authorizer").
"""

import floor_aws
from aws_lambda_powertools import Logger, Metrics

logger = Logger(service="keygate")
metrics = Metrics(namespace="KeyGate", service="keygate")


def handler(event, context):
    logger.append_keys(cold_start=True, function_name=context.function_name,
                       function_request_id=context.aws_request_id, correlation_id="cold-start")
    allowed = floor_aws.serve(event)
    logger.debug("signature checked", extra={"user_id": allowed["principalId"]})
    return allowed
