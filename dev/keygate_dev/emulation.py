"""Where the local stage keeps its DynamoDB table and Secrets Manager secrets.

Three modes, chosen by the environment of `keygate dev serve` / `make dev`:

- embedded (default): moto's ThreadedMotoServer on a free 127.0.0.1 port, in
  this process; the data lives as long as the server.
- endpoint: `AWS_ENDPOINT_URL=http://...` points at another emulator
  (LocalStack, a moto server, DynamoDB Local + a Secrets Manager emulator);
  the template's tables are created there if missing.
- real: `KEYGATE_AWS=real` uses the AWS account of the current credentials
  (e.g. `AWS_PROFILE`) and the tables of a deployed KeyGate stack: the
  KeysTableName and NoncesTableName outputs of `KEYGATE_STACK_NAME` (default
  keygate-dev, as in samconfig.toml), or `KEYGATE_TABLE_NAME` and
  `KEYGATE_NONCES_TABLE_NAME` given directly. Nothing is created there; the
  local stage's secrets are encrypted with the account's AWS managed key (the
  stack's own key admits the stack's functions only).

In every mode the tables come from template.yaml (keygate_dev.template); an
emulator also gets a KMS key standing for the stack's `SecretsKey`.
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
LOCAL_NONCES_TABLE_NAME = "keygate-local-nonces"
LOCAL_SECRETS_KEY_ALIAS = "alias/keygate-local-secrets"  # the emulator's stand-in for the stack's SecretsKey
AWS_MANAGED_SECRETS_KEY = "alias/aws/secretsmanager"  # real mode's: the account's AWS managed key
# The emulator's stand-in for the stack's StepUpSigningKey (issue 14); real mode names one in KEYGATE_STEP_UP_KEY_ID.
LOCAL_STEP_UP_KEY_ALIAS = "alias/keygate-local-step-up"
DEFAULT_STACK_NAME = "keygate-dev"  # samconfig.toml's default stack_name
TABLE_NAME_OUTPUT = "KeysTableName"  # template.yaml's outputs naming the tables
NONCES_TABLE_NAME_OUTPUT = "NoncesTableName"
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
    nonces_table_name: str = field(init=False, default=LOCAL_NONCES_TABLE_NAME)
    secrets_key_id: str = field(init=False, default=AWS_MANAGED_SECRETS_KEY)
    step_up_key_id: str = field(init=False, default=LOCAL_STEP_UP_KEY_ALIAS)
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
    def resource_names(self) -> dict[str, str]:
        """The physical names (ids) of the template's resources the functions' environments reference."""
        return {"KeysTable": self.table_name, "NoncesTable": self.nonces_table_name,
                "SecretsKey": self.secrets_key_id, "StepUpSigningKey": self.step_up_key_id}

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

    def client(self, service: str) -> Any:
        """A boto3 client of this backend (the exchange's bus and queues: keygate_dev.exchange_bus)."""
        return self._client(service)

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

            from keygate_dev import moto_speedups

            moto_speedups.install()
            # moto's werkzeug server would log every AWS call of every request.
            logging.getLogger("werkzeug").setLevel(logging.WARNING)
            _check_port_is_free(self.port)  # moto's start() would wait forever on a taken port
            self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
            self._moto.start()
            host, port = self._moto.get_host_and_port()
            self.endpoint_url = f"http://{host}:{port}"
        try:
            if self.mode == "real":
                self._check_real_tables()
            else:
                self._create_tables()
                self._create_secrets_key()
                self._create_step_up_key()
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
            template.create_tables(dynamodb, self.resource_names(), existing=set(dynamodb.list_tables()["TableNames"]))
        except (BotoCoreError, ClientError) as error:
            raise EmulationError(f"Cannot create the tables at {self.endpoint_url}: {error}") from error

    def _create_secrets_key(self) -> None:
        """A KMS key for the secrets, as the stack's SecretsKey (found again by its alias on a restart)."""
        kms = self._client("kms")
        try:
            try:
                self.secrets_key_id = kms.describe_key(KeyId=LOCAL_SECRETS_KEY_ALIAS)["KeyMetadata"]["KeyId"]
            except kms.exceptions.NotFoundException:
                self.secrets_key_id = kms.create_key(Description="KeyGate local stage: API key secrets")[
                    "KeyMetadata"]["KeyId"]
                kms.create_alias(AliasName=LOCAL_SECRETS_KEY_ALIAS, TargetKeyId=self.secrets_key_id)
        except (BotoCoreError, ClientError):
            # An emulator without KMS (a Secrets Manager emulator beside DynamoDB Local): its secrets then
            # name the AWS managed key, which such emulators accept without checking.
            self.secrets_key_id = AWS_MANAGED_SECRETS_KEY

    def _create_step_up_key(self) -> None:
        """An ECC P-256 signing key, as the stack's StepUpSigningKey (found again by its alias on a restart)."""
        kms = self._client("kms")
        try:
            kms.describe_key(KeyId=LOCAL_STEP_UP_KEY_ALIAS)
        except kms.exceptions.NotFoundException:
            key_id = kms.create_key(Description="KeyGate local stage: step-up tokens", KeyUsage="SIGN_VERIFY",
                                    KeySpec="ECC_NIST_P256")["KeyMetadata"]["KeyId"]
            kms.create_alias(AliasName=LOCAL_STEP_UP_KEY_ALIAS, TargetKeyId=key_id)
        except (BotoCoreError, ClientError) as error:
            raise EmulationError(f"Cannot create the step-up signing key at {self.endpoint_url}: {error}") from error
        self.step_up_key_id = LOCAL_STEP_UP_KEY_ALIAS

    def _deployed_table_names(self) -> tuple[str, str]:
        stack = self.environ.get("KEYGATE_STACK_NAME") or DEFAULT_STACK_NAME
        try:
            described = self._client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
        except (BotoCoreError, ClientError) as error:
            raise EmulationError(f"KEYGATE_AWS=real: cannot read the outputs of stack {stack!r} with the current "
                                 f"AWS credentials ({error}). Deploy it (docs/local-development.md), set "
                                 "KEYGATE_STACK_NAME, or set KEYGATE_TABLE_NAME and KEYGATE_NONCES_TABLE_NAME.") \
                from None
        outputs = {output.get("OutputKey"): str(output.get("OutputValue"))
                   for output in described.get("Outputs") or []}
        missing = [name for name in (TABLE_NAME_OUTPUT, NONCES_TABLE_NAME_OUTPUT) if name not in outputs]
        if missing:
            raise EmulationError(f"KEYGATE_AWS=real: stack {stack!r} has no {' or '.join(missing)} output; "
                                 "is it KeyGate (of this version)?")
        return outputs[TABLE_NAME_OUTPUT], outputs[NONCES_TABLE_NAME_OUTPUT]

    def _check_real_tables(self) -> None:
        given = self.environ.get("KEYGATE_TABLE_NAME"), self.environ.get("KEYGATE_NONCES_TABLE_NAME")
        self.table_name, self.nonces_table_name = given if all(given) else self._deployed_table_names()
        self.secrets_key_id = AWS_MANAGED_SECRETS_KEY
        self.step_up_key_id = self.environ.get("KEYGATE_STEP_UP_KEY_ID") or LOCAL_STEP_UP_KEY_ALIAS
        for name in (self.table_name, self.nonces_table_name):
            try:
                self._client("dynamodb").describe_table(TableName=name)
            except (BotoCoreError, ClientError) as error:
                raise EmulationError(f"Cannot use DynamoDB table {name!r} with the current AWS credentials: "
                                     f"{error}") from error
