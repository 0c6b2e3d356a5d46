"""keygate_dev.moto_speedups: one backup copy of a table per TransactWriteItems, and the same outcomes."""

from __future__ import annotations

import copy
import threading
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.dynamodb import models
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


def _table() -> Table:
    return models.dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION].tables[TABLE]


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
    # Given a transaction whose last item's condition fails, after a put, an update and a delete that would succeed
    before = dynamodb.scan(TableName=TABLE)["Items"]
    items = [*_puts("first"),
             {"Update": {"TableName": TABLE, "Key": {"pk": {"S": "existing-1"}},
                         "UpdateExpression": "SET touched = :yes",
                         "ExpressionAttributeValues": {":yes": {"BOOL": True}}}},
             {"Delete": {"TableName": TABLE, "Key": {"pk": {"S": "existing-2"}}}},
             *_puts("existing-0", condition="attribute_not_exists(pk)")]
    # When it is sent
    with pytest.raises(dynamodb.exceptions.TransactionCanceledException) as cancelled:
        dynamodb.transact_write_items(TransactItems=items)
    # Then DynamoDB's answer names the failed item, and the backup (one copy) restored the table as it was
    reasons = [reason["Code"] for reason in cancelled.value.response["CancellationReasons"]]
    assert reasons == ["None", "None", "None", "ConditionalCheckFailed"]
    assert len(table_copies) == 1
    assert sorted(dynamodb.scan(TableName=TABLE)["Items"], key=str) == sorted(before, key=str)


def test_no_copy_outlives_its_transaction(dynamodb, table_copies):
    # Given a committed transaction and a cancelled one
    dynamodb.transact_write_items(TransactItems=_puts("a", "b"))
    with pytest.raises(dynamodb.exceptions.TransactionCanceledException):
        dynamodb.transact_write_items(TransactItems=_puts("c") + _puts("a", condition="attribute_not_exists(pk)"))
    # When a third is sent, and the table is then deep-copied outside any transaction
    dynamodb.transact_write_items(TransactItems=_puts("d", "e"))
    table = _table()
    outside = [models.copy.deepcopy(table), models.copy.deepcopy(table)]
    # Then each transaction backed its table up afresh, and a copy outside one is a new copy each time
    assert len(table_copies) == 3 + 2
    assert outside[0] is not outside[1] and table not in outside
    assert {"a", "b", "d", "e"} <= _keys(dynamodb) and "c" not in _keys(dynamodb)


def test_transactions_on_two_threads_each_get_their_own_copy(dynamodb):
    # Given a transaction held open on one thread, between its backup and its writes
    table, inside, release = _table(), threading.Event(), threading.Event()
    held: list[Any] = []

    def hold_open(*_args: Any) -> None:
        held.append(models.copy.deepcopy(table))
        inside.set()
        release.wait(timeout=10)

    shim = models.copy
    holder = threading.Thread(target=shim.transaction(hold_open), args=(None, []))
    holder.start()
    assert inside.wait(timeout=10)
    try:
        # When code outside any transaction on another thread copies the same table, then a transaction there
        outside = models.copy.deepcopy(table)
        other_transaction = shim.transaction(lambda *_args: models.copy.deepcopy(table))(None, [])
    finally:
        release.set()
        holder.join(timeout=10)
    # Then each got a copy of its own: a rollback on one thread can never restore another's backup
    assert len({id(held[0]), id(other_transaction), id(outside)}) == 3
    assert table not in (held[0], other_transaction, outside)
