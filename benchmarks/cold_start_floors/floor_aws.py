"""Floor 1: the authorizer's first event with no KeyGate code and nothing but boto3.

The two clients and the five operations `keygate.store` performs for a bot's first
signed request (key pointer, key record, secret, nonce, last use), on the
same items of the same table. No pydantic, no Powertools.
"""

import time
import uuid

import boto3


def serve(event):
    table, key_id, user_id = event["table"], event["key_id"], event["user_id"]
    dynamodb = boto3.client("dynamodb")
    dynamodb.get_item(TableName=table, Key={"pk": {"S": f"KEY#{key_id}"}, "sk": {"S": "KEY"}},
                      ConsistentRead=True)
    dynamodb.get_item(TableName=table, Key={"pk": {"S": f"USER#{user_id}"}, "sk": {"S": f"KEY#{key_id}"}},
                      ConsistentRead=True)
    boto3.client("secretsmanager").get_secret_value(SecretId=event["secret_id"])
    now_ms = time.time_ns() // 1_000_000
    dynamodb.put_item(TableName=table, Item={"pk": {"S": f"NONCE#{key_id}#{uuid.uuid4().hex}"}, "sk": {"S": "NONCE"},
                                             "expires_ttl": {"N": str(now_ms // 1000 + 60)}},
                      ConditionExpression="attribute_not_exists(pk)")
    dynamodb.update_item(TableName=table, Key={"pk": {"S": f"USER#{user_id}"}, "sk": {"S": f"USAGE#{key_id}"}},
                         UpdateExpression="SET last_used_at = :now",
                         ExpressionAttributeValues={":now": {"S": str(now_ms)}})
    return {"principalId": user_id}


def handler(event, context):
    return serve(event)
