"""Floor 1: the authorizer's first event with no KeyGate code and nothing but botocore.

botocore's own session, as keygate.storage.aws makes its clients (boto3 only wraps it),
the two clients (with keygate.storage's client config) and the five requests
keygate.storage sends for a bot's first signed request, with the same
parameters: the key pointer, the key record, the secret, the nonce's
conditional PutItem, the last use's conditional UpdateItem. The user it
answers is the one the pointer names, so a floor that read nothing cannot pass.
tests/integration/test_cold_start_floor.py checks the requests against the authorizer's.
No pydantic, no Powertools.
"""

import contextlib
import functools
import os
import time
import uuid
from datetime import UTC, datetime, timedelta

import botocore.session
from botocore.config import Config

# keygate.storage.aws.BOTO_CONFIG: the retry mode changes how botocore builds the client.
CLIENT_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})
NONCE_TTL_MS = 60_000
LAST_USED_INTERVAL_SECONDS = 60


@functools.cache
def session():
    """The process's botocore session, made on first use."""
    return botocore.session.get_session()


def _iso(moment):
    return moment.isoformat(timespec="milliseconds")


def serve(event):
    table, nonces_table, key_id = event["table"], event["nonces_table"], event["key_id"]
    dynamodb = session().create_client("dynamodb", config=CLIENT_CONFIG)
    pointer = dynamodb.get_item(TableName=table, Key={"pk": {"S": f"KEY#{key_id}"}, "sk": {"S": "KEY"}},
                                ConsistentRead=True)
    if "Item" not in pointer:
        raise LookupError("no key pointer")
    user_id = pointer["Item"]["user_id"]["S"]
    record = dynamodb.get_item(TableName=table, Key={"pk": {"S": f"USER#{user_id}"}, "sk": {"S": f"KEY#{key_id}"}},
                               ConsistentRead=True)
    if "Item" not in record:
        raise LookupError("no key record")
    secrets = session().create_client("secretsmanager", config=CLIENT_CONFIG)
    if not secrets.get_secret_value(SecretId=event["secret_id"]).get("SecretString"):
        raise LookupError("the key's secret is empty")
    now_ms = time.time_ns() // 1_000_000
    expires_at_ms = now_ms + NONCE_TTL_MS
    dynamodb.put_item(
        TableName=nonces_table,
        Item={"pk": {"S": f"{key_id}#{uuid.uuid4().hex}"},
              "expires_at_ms": {"N": str(expires_at_ms)}, "expires_ttl": {"N": str(expires_at_ms // 1000 + 1)},
              "writer": {"S": os.urandom(8).hex()}},
        ConditionExpression="attribute_not_exists(pk) OR expires_at_ms < :now",
        ExpressionAttributeValues={":now": {"N": str(now_ms)}},
        ReturnValuesOnConditionCheckFailure="ALL_OLD")
    now = datetime.now(UTC)
    # Used within the interval already: nothing to write, as in keygate.storage.lookup.
    with contextlib.suppress(dynamodb.exceptions.ConditionalCheckFailedException):
        dynamodb.update_item(
            TableName=table, Key={"pk": {"S": f"USAGE#{user_id}"}, "sk": {"S": key_id}},
            UpdateExpression="SET last_used_at = :now, #type = :type",
            ConditionExpression="attribute_not_exists(last_used_at) OR last_used_at < :cutoff",
            ExpressionAttributeNames={"#type": "type"},
            ExpressionAttributeValues={":now": {"S": _iso(now)}, ":type": {"S": "usage"},
                                       ":cutoff": {"S": _iso(now - timedelta(seconds=LAST_USED_INTERVAL_SECONDS))}})
    return {"principalId": user_id}


def handler(event, context):
    return serve(event)
