"""The stack under test: its name, region and parameters, its composition root, and what it stores.

The `stack_env`, `aws` and `client` fixtures (tests/conftest.py) configure this
process as the stack's functions on an in-process moto account; the helpers
here read and seed that account through the layer, or with test-only clients
(a Scan, a ListSecrets) where production never looks.
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

import boto3
from cryptography.hazmat.primitives.asymmetric import rsa

from keygate import wiring
from keygate.config import StorageConfig
from keygate.records import AccountState
from keygate.storage import aws as layer_aws
from keygate.storage import layout
from keygate.storage.lookup import DynamoKeyLookup

if TYPE_CHECKING:
    from keygate_dev.identity import LocalIdentityProvider
    from keygate_dev.jwks_server import JwksServer

TABLE_NAME = "keygate-test-keys"
NONCES_TABLE_NAME = "keygate-test-nonces"
# The stack's KMS key for the secrets (SecretsKey). moto records a secret's KmsKeyId without checking it
# (nor any key policy): tests/unit/test_key_policy.py proves the key's policy instead.
SECRETS_KEY_ID = "00000000-0000-4000-8000-00000000c0de"
# The physical names of the template's resources that the functions' environments reference.
# The step-up signing key (StepUpSigningKey) is an ECC key the `aws` fixture creates under this alias.
STEP_UP_KEY_ALIAS = "alias/keygate-test-step-up"
RESOURCE_NAMES = {"KeysTable": TABLE_NAME, "NoncesTable": NONCES_TABLE_NAME, "SecretsKey": SECRETS_KEY_ID,
                  "StepUpSigningKey": STEP_UP_KEY_ALIAS}
# The relying party of the tests' built-in step-up (the software authenticator's origin).
PASSKEY_RP_ID = "app.example.com"
PASSKEY_ORIGIN = "https://app.example.com"
BUILTIN_STEP_UP = {"StepUpMode": "builtin", "PasskeyRpId": PASSKEY_RP_ID, "PasskeyOrigins": PASSKEY_ORIGIN}
REGION = "us-east-1"
STAGE = "test"
# The exchange's agent address every EIP-712 agent authorization names (the stack parameter ExchangeAgentAddress).
AGENT_ADDRESS = "0x000000000000000000000000000000000000a9e7"
# The stack parameters of a deployment shaped like ZDEX's doc (README, "Which deployment serves which doc").
ZDEX_STYLE_STACK = {"MaxActiveKeysPerUser": "5", "AllowedPermissions": "read,trade,withdraw", "StepUpRequired": "false"}


def stack_parameters(identity: LocalIdentityProvider, jwks: JwksServer) -> dict[str, str]:
    """The stack's parameters: the test stage, trusting the local identity provider's JWKS as an external
    step-up issuer (the tests of the built-in issuer override them with BUILTIN_STEP_UP)."""
    return {
        "Stage": STAGE,
        "StepUpMode": "external",
        "PasskeyRpId": PASSKEY_RP_ID,
        "PasskeyOrigins": PASSKEY_ORIGIN,
        "SessionIssuer": identity.session_issuer,
        "SessionJwksUrl": jwks.session_jwks_url,
        "StepUpIssuer": identity.step_up_issuer,
        "StepUpJwks": jwks.step_up_jwks_url,
        "ExchangeAgentAddress": AGENT_ADDRESS,
    }


def create_step_up_key() -> str:
    """The stack's StepUpSigningKey on moto, under the alias RESOURCE_NAMES names."""
    kms = boto3.client("kms", region_name=REGION)
    key_id = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName=STEP_UP_KEY_ALIAS, TargetKeyId=key_id)
    return key_id


def layer() -> wiring.Management:
    """The management functions' composition root for the current environment (the stack's tables)."""
    return wiring.management()


def run_janitor(clock: Any = None) -> Any:
    """One run of the secret janitor, on `clock` (default: the wall clock)."""
    lifecycle = layer().lifecycle
    return (lifecycle if clock is None else lifecycle.at(clock)).run_secret_janitor()


def key_lookup() -> DynamoKeyLookup:
    """The signature authorizer's storage, on the stack's tables."""
    storage = StorageConfig.from_environ()
    return DynamoKeyLookup(layer_aws.clients(storage.aws_endpoint_url), storage.table_name, NONCES_TABLE_NAME)


def secret_value(key_id: str) -> str | None:
    return layer().secrets.read(key_id)


def secret_exists(key_id: str) -> bool:
    return layer().secrets.name(key_id) in secret_names()


def onboard(user_id: str, *, trade: bool = True) -> None:
    """Give a user the onboarding state (and, with `trade`, the trading handshake) a create needs."""
    wiring.management().keys.put_account_state(
        user_id, AccountState(onboarding_completed=True, trading_handshake_completed=trade))


def unique_user() -> str:
    return f"user-{uuid.uuid4().hex[:10]}"


def table_items(table_name: str = TABLE_NAME) -> list[dict[str, Any]]:
    """Every item of the keys table (or another), for invariant checks in tests (moto only; production
    never scans)."""
    client = boto3.client("dynamodb", region_name=REGION)
    items, kwargs = [], {"TableName": table_name}
    while True:
        page = client.scan(**kwargs)
        items.extend(layout.from_item(item) for item in page["Items"])
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def nonce_items() -> list[dict[str, Any]]:
    """Every item of the nonces table."""
    return table_items(NONCES_TABLE_NAME)


def secret_names() -> set[str]:
    client = boto3.client("secretsmanager", region_name=REGION)
    names, kwargs = set(), {}
    while True:
        page = client.list_secrets(**kwargs)
        names.update(secret["Name"] for secret in page["SecretList"])
        if "NextToken" not in page:
            return names
        kwargs["NextToken"] = page["NextToken"]


def state_snapshot() -> tuple[list[str], set[str]]:
    """The whole table and the secret names, comparable before and after a refused request."""
    return sorted(json.dumps(item, sort_keys=True) for item in table_items()), secret_names()


def gaiaex_time(text: str) -> datetime:
    """A timestamp as GaiaEx's routes write it: ISO 8601 in UTC to the second, with a 'Z'."""
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", text), text
    return datetime.fromisoformat(text)


def zdex_time(text: str) -> datetime:
    """A timestamp as ZDEX's routes (and the bot routes) write it: ISO 8601 in UTC with milliseconds and a 'Z'."""
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", text), text
    return datetime.fromisoformat(text)


@functools.cache
def rsa_private_key() -> rsa.RSAPrivateKey:
    """An RSA key the local identity provider never published (for tokens whose `alg` is not the JWKS key's)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)
