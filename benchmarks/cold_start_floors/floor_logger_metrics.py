"""Floor 3: floor 2 plus the Powertools Logger and Metrics, used as KeyGate's authorizer uses them."""

import floor_pydantic
from aws_lambda_powertools import Logger, Metrics

logger = Logger(service="keygate")
metrics = Metrics(namespace="KeyGate", service="keygate")


@metrics.log_metrics
@logger.inject_lambda_context(log_event=False, clear_state=True)
def handler(event, context):
    allowed = floor_pydantic.handler(event, context)
    logger.info("signature checked", extra={"user_id": allowed["principalId"]})
    metrics.add_metric(name="SignatureAllowed", unit="Count", value=1)
    return allowed
