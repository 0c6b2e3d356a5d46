"""The one Logger, Metrics and Tracer of every KeyGate function.

Service name and namespace come from POWERTOOLS_* variables set in
template.yaml's Globals; log lines carry structured keys, never secrets. The
Tracer (which loads the X-Ray SDK) is created on first use, so the signature
authorizer, which never asks for it, does not pay for it (docs/architecture.md,
"Cold start").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

logger = Logger(service="keygate")
metrics = Metrics(namespace="KeyGate", service="keygate")
tracer: Tracer


def flush_added_metrics() -> None:
    """Publish the metrics this invocation added, if it added any, and forget them.

    For handlers that add a metric only now and then (the signature authorizer: for a refusal, or a failed
    last-use refresh): Powertools' `log_metrics` would warn on every invocation that added none. With metrics
    switched off (POWERTOOLS_METRICS_DISABLED) Powertools keeps them; they are dropped here instead of
    piling up across invocations.
    """
    if metrics.metric_set:
        metrics.flush_metrics()
        metrics.clear_metrics()


def __getattr__(name: str) -> Any:
    if name == "tracer":
        from aws_lambda_powertools import Tracer

        globals()["tracer"] = created = Tracer(service="keygate")
        return created
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
