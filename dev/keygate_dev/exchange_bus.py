"""The exchange's bus in the local stage: template.yaml's bus, rules and queues, created in the AWS
emulation, and the delivery AWS would make from the queue to ExchangeEventsFunction.

moto cannot create a rule with a Lambda target, but routes events to SQS targets: so, as on AWS, the rules
deliver to the exchange events queue, and `ExchangeBus.deliver` plays Lambda's event source mapping (receive
a batch, invoke the function with it, delete what it did not report as failed; SQS's redrive policy moves a
message received too often to the dead-letter queue). `keygate dev serve` runs it in a thread; tests call
it once per step. `onboard` plays the exchange: a wallet kept in the state directory signs a real EIP-712
agent authorization, put on the bus with a trade event.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from keygate_dev import template

BUS_RESOURCE = "ExchangeEventBus"
QUEUE_RESOURCE = "ExchangeEventsQueue"
DEAD_LETTER_RESOURCE = "ExchangeEventsDeadLetterQueue"
FUNCTION_ID = "ExchangeEventsFunction"
ESM_BATCH_SIZE = 10

Invoke = Callable[[dict[str, Any]], Any]


def local_bus_name(stage: str) -> str:
    """The bus the stack creates (template.yaml's ExchangeEventBus Name: keygate-exchange-${Stage})."""
    name = template.resources("AWS::Events::EventBus")[BUS_RESOURCE]["Properties"]["Name"]["Fn::Sub"]
    return name.replace("${Stage}", stage)


def rule_patterns() -> dict[str, dict[str, Any]]:
    """Each rule of template.yaml (by logical id) whose target is the exchange events queue: its pattern."""
    patterns = {}
    for rule_id, rule in template.resources("AWS::Events::Rule").items():
        targets = rule["Properties"].get("Targets", [])
        if any(target["Arn"] == {"Fn::GetAtt": [QUEUE_RESOURCE, "Arn"]} for target in targets):
            patterns[rule_id] = rule["Properties"]["EventPattern"]
    return patterns


def max_receive_count() -> int:
    queue = template.resources("AWS::SQS::Queue")[QUEUE_RESOURCE]["Properties"]
    return int(queue["RedrivePolicy"]["maxReceiveCount"])


@dataclass
class ExchangeBus:
    """The bus and queues of one stage in an AWS emulation (moto), by name."""

    events: Any  # boto3 clients on the emulation
    sqs: Any
    bus_name: str
    visibility_timeout_seconds: int = 5  # short locally: a failed delivery is retried soon
    queue_url: str = ""
    dead_letter_url: str = ""

    def create(self) -> ExchangeBus:
        """The bus, the queues (with the template's redrive policy) and the rules targeting the queue."""
        stage = self.bus_name
        if self.bus_name not in {bus["Name"] for bus in self.events.list_event_buses()["EventBuses"]}:
            self.events.create_event_bus(Name=self.bus_name)
        self.dead_letter_url = self.sqs.create_queue(QueueName=f"{stage}-dead-letters")["QueueUrl"]
        dead_letter_arn = self._arn(self.dead_letter_url)
        self.queue_url = self.sqs.create_queue(QueueName=f"{stage}-events", Attributes={
            "VisibilityTimeout": str(self.visibility_timeout_seconds),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dead_letter_arn,
                                         "maxReceiveCount": str(max_receive_count())})})["QueueUrl"]
        for rule_id, pattern in rule_patterns().items():
            self.events.put_rule(Name=f"{stage}-{rule_id}", EventBusName=self.bus_name,
                                 EventPattern=json.dumps(pattern), State="ENABLED")
            self.events.put_targets(Rule=f"{stage}-{rule_id}", EventBusName=self.bus_name,
                                    Targets=[{"Id": "exchange-events-queue", "Arn": self._arn(self.queue_url)}])
        return self

    def _arn(self, queue_url: str) -> str:
        return self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"]

    def put(self, source: str, detail_type: str, detail: dict[str, Any]) -> None:
        """Put one event on the bus, as the exchange does."""
        answer = self.events.put_events(Entries=[{"Source": source, "DetailType": detail_type,
                                                  "Detail": json.dumps(detail), "EventBusName": self.bus_name}])
        if answer.get("FailedEntryCount"):
            raise RuntimeError(f"the bus refused the event: {answer['Entries']}")

    def deliver(self, invoke: Invoke, *, wait_seconds: int = 0) -> int:
        """One poll of Lambda's event source mapping: a batch from the queue to the function; the messages
        it did not report as failed are deleted. The number of messages delivered."""
        received = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=ESM_BATCH_SIZE,
                                            WaitTimeSeconds=wait_seconds, AttributeNames=["All"]).get("Messages", [])
        if not received:
            return 0
        queue_arn = self._arn(self.queue_url)
        records = [{"messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"],
                    "body": message["Body"], "attributes": message.get("Attributes", {}), "messageAttributes": {},
                    "md5OfBody": message.get("MD5OfBody", ""), "eventSource": "aws:sqs",
                    "eventSourceARN": queue_arn, "awsRegion": queue_arn.split(":")[3]} for message in received]
        try:
            result = invoke({"Records": records})
            failed = {item["itemIdentifier"] for item in (result or {}).get("batchItemFailures", [])}
        except Exception:  # noqa: BLE001  # a failed invocation: the whole batch comes back after its timeout
            failed = {record["messageId"] for record in records}
        for message in received:
            if message["MessageId"] not in failed:
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return len(received)

    def dead_letters(self) -> list[dict[str, Any]]:
        """The events in the dead-letter queue (received, left there)."""
        messages = self.sqs.receive_message(QueueUrl=self.dead_letter_url, MaxNumberOfMessages=10,
                                            VisibilityTimeout=0).get("Messages", [])
        return [json.loads(message["Body"]) for message in messages]


class Delivery:
    """`ExchangeBus.deliver` in a thread, until stopped (the local server's event source mapping)."""

    def __init__(self, bus: ExchangeBus, invoke: Invoke, *, idle_seconds: float = 0.2) -> None:
        self._bus, self._invoke, self._idle = bus, invoke, idle_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="exchange-events-delivery", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                delivered = self._bus.deliver(self._invoke)
            except Exception:  # noqa: BLE001  # the emulation stopping under us; the loop ends with it
                delivered = 0
            if not delivered:
                self._stop.wait(self._idle)

    def __enter__(self) -> Delivery:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


# ------------------------------------------------------------ the exchange
def agent_authorization(private_key: str, user_id: str, *, agent: str, name: str, chain_id: int,
                        verifying_contract: str, nonce: int | None = None) -> dict[str, Any]:
    """The detail of an AgentAuthorizationSigned event, signed by the wallet of `private_key`."""
    from keygate import eip712

    domain = eip712.AgentDomain(name=name, chain_id=chain_id, verifying_contract=verifying_contract,
                                agent_address=agent)
    message = eip712.typed_data(domain, account=user_id, agent=agent,
                                nonce=time.time_ns() // 1_000_000 if nonce is None else nonce)
    return {"user_id": user_id, "wallet_address": eip712.address_of(private_key), "typed_data": message,
            "signature": eip712.sign(message, private_key)}


def trade_executed(user_id: str) -> dict[str, Any]:
    return {"user_id": user_id, "trade_id": f"local-{uuid.uuid4().hex[:12]}",
            "executed_at": datetime.now(UTC).isoformat(timespec="milliseconds")}


class NotRecorded(Exception):
    """The local server did not record the events in time (shown as one line)."""


def wallet_address(private_key: str) -> str:
    from keygate import eip712

    return eip712.address_of(private_key)


def onboard(info: Any, user_id: str, private_key: str, *, trade: bool = True, timeout_seconds: float = 30) -> None:
    """`keygate dev onboard`: as the exchange, put the user's signed agent authorization (and a trade) on the
    running server's bus, then wait until its delivery has recorded them on the user's account."""
    import boto3

    from keygate.storage import layout

    parameters = {**template.parameter_defaults(), **info.parameters}
    aws = info.aws_environment
    session = {"region_name": aws["AWS_REGION"], "endpoint_url": info.aws_endpoint_url}
    if "AWS_ACCESS_KEY_ID" in aws:
        session.update(aws_access_key_id=aws["AWS_ACCESS_KEY_ID"], aws_secret_access_key=aws["AWS_SECRET_ACCESS_KEY"])
    bus = ExchangeBus(boto3.client("events", **session), boto3.client("sqs", **session), info.exchange_bus_name)
    bus.put("exchange.onboarding", "AgentAuthorizationSigned", agent_authorization(
        private_key, user_id, agent=parameters["ExchangeAgentAddress"], name=parameters["AgentDomainName"],
        chain_id=int(parameters["AgentChainId"]), verifying_contract=parameters["AgentVerifyingContract"]))
    if trade:
        bus.put("exchange.trading", "TradeExecuted", trade_executed(user_id))
    dynamodb = boto3.client("dynamodb", **session)
    wanted = {"onboarding_completed", *(("trading_handshake_completed",) if trade else ())}
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        item = dynamodb.get_item(TableName=info.resource_names["KeysTable"], ConsistentRead=True,
                                 Key=layout.key(layout.user_pk(user_id), layout.ACCOUNT)).get("Item", {})
        if all(item.get(name, {}).get("BOOL") for name in wanted):
            return
        time.sleep(0.1)
    raise NotRecorded(f"The local server did not record {user_id}'s events within {timeout_seconds:g} s: see its "
                      "output (an `exchange event rejected` line says why).")
