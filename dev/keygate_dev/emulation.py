"""Where the local stage keeps its DynamoDB table and Secrets Manager secrets.

Three modes, chosen by the environment of `keygate dev serve` / `make dev`:

- embedded (default): moto's ThreadedMotoServer on a free 127.0.0.1 port, in
  this process; the data lives as long as the server.
- endpoint: `AWS_ENDPOINT_URL=http://...` points at another emulator
  (LocalStack, a moto server, DynamoDB Local + a Secrets Manager emulator);
  the template's tables are created there if missing.
- real: `KEYGATE_AWS=real` uses the AWS account of the current credentials
  (e.g. `AWS_PROFILE`); `KEYGATE_TABLE_NAME` names an existing table (a
  deployed stack's KeysTableName output). Nothing is created there.

In every mode the tables come from template.yaml (keygate_dev.template).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from keygate_dev import template

LOCAL_TABLE_NAME = "keygate-local-keys"
LOCAL_REGION = "us-east-1"
# moto accepts any credentials; these keep boto3 from looking for real ones.
EMULATOR_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "keygate-local", "AWS_SECRET_ACCESS_KEY": "keygate-local"}


class EmulationError(Exception):
    """The chosen AWS backend cannot be used (message is shown as is)."""


@dataclass
class AwsEmulation:
    """The AWS backend of the local stage, started and stopped as a context manager."""

    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
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
            self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
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

    def _check_real_table(self) -> None:
        name = self.environ.get("KEYGATE_TABLE_NAME")
        if not name:
            raise EmulationError("KEYGATE_AWS=real needs KEYGATE_TABLE_NAME: the KeysTableName output of a "
                                 "deployed KeyGate stack (sam list stack-outputs --stack-name keygate-dev).")
        self.table_name = name
        try:
            self._client("dynamodb").describe_table(TableName=name)
        except (BotoCoreError, ClientError) as error:
            raise EmulationError(f"Cannot use DynamoDB table {name!r} with the current AWS credentials: "
                                 f"{error}") from error
