"""Where the local stage keeps its DynamoDB table and Secrets Manager secrets.

Three modes, chosen by the environment of `keygate dev serve` / `make dev`:

- embedded (default): moto's ThreadedMotoServer on a free 127.0.0.1 port, in
  this process; the data lives as long as the server.
- endpoint: `AWS_ENDPOINT_URL=http://...` points at another emulator
  (LocalStack, a moto server, DynamoDB Local + a Secrets Manager emulator);
  the template's tables are created there if missing.
- real: `KEYGATE_AWS=real` uses the AWS account of the current credentials
  (e.g. `AWS_PROFILE`) and the table of a deployed KeyGate stack: the
  KeysTableName output of `KEYGATE_STACK_NAME` (default keygate-dev, as in
  samconfig.toml), or `KEYGATE_TABLE_NAME` given directly. Nothing is created there.

In every mode the tables come from template.yaml (keygate_dev.template).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from keygate_dev import template

LOCAL_TABLE_NAME = "keygate-local-keys"
DEFAULT_STACK_NAME = "keygate-dev"  # samconfig.toml's default stack_name
TABLE_NAME_OUTPUT = "KeysTableName"  # template.yaml's output naming the table
LOCAL_REGION = "us-east-1"
# moto accepts any credentials; these keep boto3 from looking for real ones.
EMULATOR_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "keygate-local", "AWS_SECRET_ACCESS_KEY": "keygate-local"}  # nosec B105  # fake


class EmulationError(Exception):
    """The chosen AWS backend cannot be used (message is shown as is)."""


def _check_port_is_free(port: int) -> None:
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as werkzeug's server will
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            raise EmulationError(f"Cannot start the embedded AWS emulation on 127.0.0.1:{port}: "
                                 f"{error.strerror}.") from None


@dataclass
class AwsEmulation:
    """The AWS backend of the local stage, started and stopped as a context manager."""

    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    port: int = 0  # of the embedded moto server; 0 picks a free one
    mode: str = field(init=False)
    endpoint_url: str | None = field(init=False, default=None)
    table_name: str = field(init=False, default=LOCAL_TABLE_NAME)
    region: str = field(init=False, default=LOCAL_REGION)
    _moto: Any = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        if self.environ.get("KEYGATE_AWS", "").lower() == "real":
            self.mode = "real"
        elif self.environ.get("AWS_ENDPOINT_URL"):
            self.mode = "endpoint"
            self.endpoint_url = self.environ["AWS_ENDPOINT_URL"].rstrip("/")
        else:
            self.mode = "embedded"
        self.region = self.environ.get("AWS_REGION") or self.environ.get("AWS_DEFAULT_REGION") or LOCAL_REGION

    # ---------------------------------------------------------- environment
    def function_environment(self) -> dict[str, str]:
        """The AWS variables every local function gets on top of its template environment."""
        variables = {"AWS_REGION": self.region, "AWS_DEFAULT_REGION": self.region}
        if self.endpoint_url:
            variables["AWS_ENDPOINT_URL"] = self.endpoint_url
        if self._uses_emulator_credentials():
            variables.update(EMULATOR_CREDENTIALS)
        return variables

    def _uses_emulator_credentials(self) -> bool:
        """Placeholder credentials for moto; another emulator gets the caller's if they set any."""
        return self.mode == "embedded" or (
            self.mode == "endpoint" and not ({"AWS_ACCESS_KEY_ID", "AWS_PROFILE"} & set(self.environ)))

    def _client(self, service: str) -> Any:
        credentials = {}
        if self._uses_emulator_credentials():
            credentials = {"aws_access_key_id": EMULATOR_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                           "aws_secret_access_key": EMULATOR_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]}
        return boto3.client(service, region_name=self.region, endpoint_url=self.endpoint_url, **credentials)

    # -------------------------------------------------------------- lifecycle
    def start(self) -> AwsEmulation:
        if self.mode == "embedded":
            from moto.moto_server.threaded_moto_server import ThreadedMotoServer

            # moto's werkzeug server would log every AWS call of every request.
            logging.getLogger("werkzeug").setLevel(logging.WARNING)
            _check_port_is_free(self.port)  # moto's start() would wait forever on a taken port
            self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
            self._moto.start()
            host, port = self._moto.get_host_and_port()
            self.endpoint_url = f"http://{host}:{port}"
        try:
            if self.mode == "real":
                self._check_real_table()
            else:
                self._create_tables()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._moto is not None:
            self._moto.stop()
            server = getattr(self._moto, "_server", None)
            if server is not None:
                server.server_close()  # release the port now, not at garbage collection
            self._moto = None

    def __enter__(self) -> AwsEmulation:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ tables
    def _create_tables(self) -> None:
        dynamodb = self._client("dynamodb")
        try:
            existing = set(dynamodb.list_tables()["TableNames"])
            if self.table_name not in existing:
                template.create_tables(dynamodb, {"KeysTable": self.table_name})
        except (BotoCoreError, ClientError) as error:
            raise EmulationError(f"Cannot create the tables at {self.endpoint_url}: {error}") from error

    def _deployed_table_name(self) -> str:
        stack = self.environ.get("KEYGATE_STACK_NAME") or DEFAULT_STACK_NAME
        try:
            described = self._client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
        except (BotoCoreError, ClientError) as error:
            raise EmulationError(f"KEYGATE_AWS=real: cannot read the outputs of stack {stack!r} with the current "
                                 f"AWS credentials ({error}). Deploy it (docs/local-development.md), set "
                                 "KEYGATE_STACK_NAME, or set KEYGATE_TABLE_NAME.") from None
        for output in described.get("Outputs") or []:
            if output.get("OutputKey") == TABLE_NAME_OUTPUT:
                return str(output["OutputValue"])
        raise EmulationError(f"KEYGATE_AWS=real: stack {stack!r} has no {TABLE_NAME_OUTPUT} output; is it KeyGate?")

    def _check_real_table(self) -> None:
        name = self.environ.get("KEYGATE_TABLE_NAME") or self._deployed_table_name()
        self.table_name = name
        try:
            self._client("dynamodb").describe_table(TableName=name)
        except (BotoCoreError, ClientError) as error:
            raise EmulationError(f"Cannot use DynamoDB table {name!r} with the current AWS credentials: "
                                 f"{error}") from error
