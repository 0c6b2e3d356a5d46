"""HMAC secrets in Secrets Manager, one per key (keygate.ports.SecretVault and SecretReader)."""

from __future__ import annotations

from keygate.storage import aws

_MISSING = frozenset({"ResourceNotFoundException"})
# A secret scheduled for deletion answers InvalidRequestException: it is gone for our purposes.
_GONE = frozenset({"ResourceNotFoundException", "InvalidRequestException"})


class SecretsManagerVault:
    def __init__(self, clients: aws.AwsClients, name_prefix: str) -> None:
        self._clients = clients
        self.name_prefix = name_prefix

    def name(self, key_id: str) -> str:
        return f"{self.name_prefix}{key_id}"

    def create(self, key_id: str, user_id: str, secret: str) -> None:
        aws.call("CreateSecret", self._clients.secretsmanager.create_secret, Name=self.name(key_id),
                 SecretString=secret, Description="KeyGate API key HMAC secret",
                 Tags=[{"Key": "keygate:key_id", "Value": key_id}, {"Key": "keygate:user_id", "Value": user_id}])

    def delete(self, key_id: str) -> None:
        """Delete at once, without the recovery window; deleting a missing secret is fine."""
        try:
            aws.call("DeleteSecret", self._clients.secretsmanager.delete_secret, expected=_MISSING,
                     SecretId=self.name(key_id), ForceDeleteWithoutRecovery=True)
        except aws.Expected:
            return

    def read(self, key_id: str) -> str | None:
        """The key's secret (the signature authorizer is the only reader); None once deleted."""
        try:
            response = aws.call("GetSecretValue", self._clients.secretsmanager.get_secret_value, expected=_GONE,
                                SecretId=self.name(key_id))
        except aws.Expected:
            return None
        secret: str | None = response.get("SecretString")
        return secret
