"""The exchange's EIP-712 agent authorization: the typed data KeyGate rebuilds, and who signed it.

KeyGate never verifies the typed data an event carries: it rebuilds it from the stack's parameters
(domain name, chain id, verifying contract, the exchange's agent address) and the event's `account`,
`agent` and `nonce`, so a signature over an extended or different type cannot pass as an authorization
(docs/architecture.md, "Events in"). eth-account (about a second to import) is imported on the first
verification only: it is deployed with ExchangeEventsFunction alone, and no other function's import
path reaches it (tests/unit/test_exchange_events.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
SIGNATURE = re.compile(r"(0x)?[0-9a-fA-F]{130}")
UINT64_MAX = 2**64 - 1
PRIMARY_TYPE = "AgentAuthorization"
DOMAIN_VERSION = "1"
TYPES: dict[str, list[dict[str, str]]] = {
    "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                     {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}],
    PRIMARY_TYPE: [{"name": "account", "type": "string"}, {"name": "agent", "type": "address"},
                   {"name": "nonce", "type": "uint64"}],
}


@dataclass(frozen=True)
class AgentDomain:
    """The stack parameters AgentDomainName, AgentChainId, AgentVerifyingContract and ExchangeAgentAddress."""

    name: str
    chain_id: int
    verifying_contract: str
    agent_address: str


def typed_data(domain: AgentDomain, *, account: str, agent: str, nonce: int) -> dict[str, Any]:
    """The full EIP-712 message of one agent authorization, built from trusted parts only."""
    return {
        "types": TYPES,
        "primaryType": PRIMARY_TYPE,
        "domain": {"name": domain.name, "version": DOMAIN_VERSION, "chainId": domain.chain_id,
                   "verifyingContract": domain.verifying_contract},
        "message": {"account": account, "agent": agent, "nonce": nonce},
    }


def recover_signer(message: dict[str, Any], signature: str) -> str:
    """The address whose key signed `message` (lower case); ValueError for a signature that recovers none."""
    from eth_account import Account
    from eth_account.messages import encode_typed_data

    if not SIGNATURE.fullmatch(signature):
        raise ValueError("not a 65-byte hex signature")
    try:
        return str(Account.recover_message(encode_typed_data(full_message=message), signature=signature)).lower()
    except Exception as error:  # noqa: BLE001  # eth-account raises several types for a bad v, r or s
        raise ValueError(f"signature recovers no address ({type(error).__name__})") from None


def sign(message: dict[str, Any], private_key: str) -> str:
    """A wallet's signature of `message`, 0x-prefixed hex (the local stage and tests play the wallet)."""
    from eth_account import Account
    from eth_account.messages import encode_typed_data

    signed = Account.sign_message(encode_typed_data(full_message=message), private_key)
    return "0x" + bytes(signed.signature).hex()


def new_wallet() -> tuple[str, str]:
    """A fresh wallet: (private key hex, address), for the local stage and tests."""
    from eth_account import Account

    account = Account.create()
    return "0x" + account.key.hex().removeprefix("0x"), str(account.address)


def address_of(private_key: str) -> str:
    from eth_account import Account

    return str(Account.from_key(private_key).address)
