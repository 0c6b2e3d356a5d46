"""AWS SDK clients, created on first use and shared per endpoint, and the one translation of AWS faults.

The clients come from botocore's own session; nothing imports boto3 (docs/architecture.md, "Cold start").
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable
from functools import cache
from typing import Any

import botocore.session
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError
from botocore.loaders import Loader

from keygate.errors import ServiceUnavailable
from keygate.observability import logger

# Short timeouts and few retries: a Lambda behind API Gateway has 29 s at most,
# and the caller is better served by a quick 503 with Retry-After.
BOTO_CONFIG = BotoConfig(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})


class DirectLookupLoader(Loader):
    """botocore's model loader, finding the one service it loads rather than listing every service first.

    botocore's own loader lists every service it ships (some 440 directories) before it loads a model, to
    check the name and to name them all in an error (docs/architecture.md, "Cold start"). This one looks for
    the service being loaded, as botocore's listing would find it, and falls back to that listing when it is
    not there.
    """

    def __init__(self, search_paths: list[str]) -> None:
        super().__init__(extra_search_paths=list(search_paths), include_default_search_paths=False)
        self._loading = threading.local()  # the service each thread's load_service_model is loading
        self._entries: dict[str, frozenset[str]] = {}

    def load_service_model(self, service_name: str, type_name: str, api_version: str | None = None) -> Any:
        outer = getattr(self._loading, "service", None)
        self._loading.service = service_name
        try:
            return super().load_service_model(service_name, type_name, api_version=api_version)
        finally:
            self._loading.service = outer

    def list_available_services(self, type_name: str) -> list[str]:
        service = getattr(self._loading, "service", None)
        if service is not None and self._has_data(service, type_name):
            return [service]
        return super().list_available_services(type_name)  # botocore's listing, and its error

    def _has_data(self, service: str, type_name: str) -> bool:
        for location in self.search_paths:
            if service not in self._entries_of(location):
                continue
            directory = os.path.join(location, service)
            if os.path.isdir(directory) and any(self.file_loader.exists(os.path.join(directory, version, type_name))
                                                for version in os.listdir(directory)):
                return True
        return False

    def _entries_of(self, location: str) -> frozenset[str]:
        """The names in a search path (a service is one of them, as botocore lists it: never "a/../a")."""
        if location not in self._entries:
            self._entries[location] = frozenset(os.listdir(location)) if os.path.isdir(location) else frozenset()
        return self._entries[location]


def new_session() -> botocore.session.Session:
    """A botocore session whose model loader is a DirectLookupLoader on the same search paths
    (AWS_DATA_PATH included)."""
    session = botocore.session.get_session()
    session.register_component("data_loader",
                               DirectLookupLoader(session.get_component("data_loader").search_paths))
    return session


class AwsClients:
    """The clients of one endpoint (None: AWS itself), each made on first use from one SDK session."""

    def __init__(self, endpoint_url: str | None) -> None:
        self.endpoint_url = endpoint_url
        self._session: botocore.session.Session | None = None
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()  # a botocore session must not create two clients at once

    def client(self, service: str) -> Any:
        """This endpoint's client of `service` (an AWS service name such as "dynamodb"), made on first use."""
        existing = self._clients.get(service)
        if existing is not None:
            return existing
        with self._lock:
            if service not in self._clients:
                if self._session is None:
                    self._session = new_session()
                self._clients[service] = self._session.create_client(service, config=BOTO_CONFIG,
                                                                      endpoint_url=self.endpoint_url)
            return self._clients[service]

    @property
    def dynamodb(self) -> Any:
        return self.client("dynamodb")

    @property
    def secretsmanager(self) -> Any:
        return self.client("secretsmanager")

    @property
    def events(self) -> Any:
        return self.client("events")

    @property
    def kms(self) -> Any:
        return self.client("kms")

    def created(self) -> list[Any]:
        """The clients made so far."""
        return list(self._clients.values())


@cache
def clients(endpoint_url: str | None = None) -> AwsClients:
    """The process's clients for an endpoint: every adapter of a function shares them."""
    return AwsClients(endpoint_url)


def forget_clients() -> None:
    """Drop every client (tests and local mode switch between AWS backends)."""
    clients.cache_clear()


def error_code(error: Exception) -> str:
    """AWS's error code, or the botocore exception's name for a fault that never reached AWS."""
    return error.response["Error"]["Code"] if isinstance(error, ClientError) else type(error).__name__


def unavailable(operation: str, error: Exception) -> ServiceUnavailable:
    logger.warning("aws call failed", extra={"operation": operation, "error_code": error_code(error)})
    return ServiceUnavailable()


class Expected(Exception):
    """An AWS error the caller named as an outcome (a failed condition, a missing secret), not a fault.

    `item`: the item a failed condition found, when the call asked for it (ReturnValuesOnConditionCheckFailure).
    """

    def __init__(self, code: str, item: dict[str, Any] | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.item = item


class Cancelled(Exception):
    """A TransactWriteItems DynamoDB cancelled; `reasons` holds each item's cancellation code, in order."""

    def __init__(self, error: ClientError) -> None:
        self.error = error
        self.reasons = [reason.get("Code", "None") for reason in error.response.get("CancellationReasons", [])]
        super().__init__(",".join(self.reasons))


def transact(dynamodb: Any, items: list[dict[str, Any]]) -> None:
    """One TransactWriteItems: Cancelled with each item's reason, ServiceUnavailable for any other fault."""
    try:
        # The token makes botocore's own retries of this call idempotent on AWS; the domain does not rely
        # on it alone (docs/architecture.md, "Committed, answer lost").
        dynamodb.transact_write_items(TransactItems=items, ClientRequestToken=uuid.uuid4().hex)
    except ClientError as error:
        if error_code(error) != "TransactionCanceledException":
            raise unavailable("TransactWriteItems", error) from error
        raise Cancelled(error) from error
    except BotoCoreError as error:
        raise unavailable("TransactWriteItems", error) from error


def call(operation: str, function: Callable[..., Any], *, expected: frozenset[str] = frozenset(),
         **kwargs: Any) -> Any:
    """One AWS call. An error code in `expected` raises Expected; any other fault, ServiceUnavailable."""
    try:
        return function(**kwargs)
    except ClientError as error:
        if error_code(error) in expected:
            found = error.response.get("Item")
            raise Expected(error_code(error), found if isinstance(found, dict) else None) from error
        raise unavailable(operation, error) from error
    except BotoCoreError as error:
        raise unavailable(operation, error) from error
