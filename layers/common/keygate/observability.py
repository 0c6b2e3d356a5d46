"""The one Logger, Tracer and Metrics of every KeyGate function.

Service name and namespace come from POWERTOOLS_* variables set in
template.yaml's Globals; log lines carry structured keys, never secrets.
"""

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger(service="keygate")
tracer = Tracer(service="keygate")
metrics = Metrics(namespace="KeyGate", service="keygate")
