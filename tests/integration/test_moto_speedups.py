"""keygate_dev.moto_speedups: one backup copy of a table per TransactWriteItems, and the same outcomes."""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.dynamodb.models.table import Table

from keygate_dev import moto_speedups

REGION = "us-east-1"
TABLE = "speedups"


@pytest.fixture
def dynamodb() -> Any:
    moto_speedups.install()  # tests/conftest.py installs it already; a second call changes nothing
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        client.create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
        for number in range(20):
            client.put_item(TableName=TABLE, Item={"pk": {"S": f"existing-{number}"}})
        yield client


@pytest.fixture
def table_copies(monkeypatch: pytest.MonkeyPatch) -> list[Table]:
    """Every deep copy of a moto table from now on."""
    copied: list[Table] = []

    def counting_deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
        if isinstance(value, Table):
            copied.append(value)
        return copy.deepcopy(value, memo)

    monkeypatch.setattr(moto_speedups, "copy", SimpleNamespace(deepcopy=counting_deepcopy))
    return copied


def _puts(*names: str, condition: str | None = None) -> list[dict[str, Any]]:
    return [{"Put": {"TableName": TABLE, "Item": {"pk": {"S": name}},
                     **({"ConditionExpression": condition} if condition else {})}} for name in names]


def _keys(dynamodb: Any) -> set[str]:
    return {item["pk"]["S"] for item in dynamodb.scan(TableName=TABLE)["Items"]}


def test_a_transaction_of_many_items_copies_their_table_once_and_applies_them_all(dynamodb, table_copies):
    # Given a table and a transaction of 25 items on it
    items = _puts(*(f"new-{number}" for number in range(25)))
    # When it is committed
    dynamodb.transact_write_items(TransactItems=items)
    # Then the table was backed up once (moto alone copies it 25 times), and every item is written
    assert len(table_copies) == 1
    assert {f"new-{number}" for number in range(25)} <= _keys(dynamodb)


def test_a_cancelled_transaction_still_leaves_nothing_behind(dynamodb, table_copies):
    # Given a transaction whose last item's condition fails, after two that would succeed
    before = _keys(dynamodb)
    items = _puts("first", "second") + _puts("existing-0", condition="attribute_not_exists(pk)")
    # When it is sent
    with pytest.raises(dynamodb.exceptions.TransactionCanceledException) as cancelled:
        dynamodb.transact_write_items(TransactItems=items)
    # Then DynamoDB's answer names the failed item, and the backup (one copy) restored the table as it was
    reasons = [reason["Code"] for reason in cancelled.value.response["CancellationReasons"]]
    assert reasons == ["None", "None", "ConditionalCheckFailed"]
    assert len(table_copies) == 1
    assert _keys(dynamodb) == before


def test_outside_a_transaction_tables_are_copied_as_moto_copies_them(dynamodb, table_copies):
    # Given two transactions one after the other
    dynamodb.transact_write_items(TransactItems=_puts("a", "b"))
    dynamodb.transact_write_items(TransactItems=_puts("c", "d"))
    # Then each backed its table up afresh (a copy is never reused across transactions)
    assert len(table_copies) == 2
    assert {"a", "b", "c", "d"} <= _keys(dynamodb)
