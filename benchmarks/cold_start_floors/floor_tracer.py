"""Floor 4: floor 3 plus the Powertools Tracer (the X-Ray SDK, botocore patched), wrapping the handler."""

import floor_pydantic
from aws_lambda_powertools import Tracer

tracer = Tracer(service="keygate")
handler = tracer.capture_lambda_handler(capture_response=False)(floor_pydantic.handler)
