"""HMAC secrets in Secrets Manager, one per key (keygate.ports.SecretVault and SecretReader).

Each is encrypted with the stack's own KMS key (SecretsKey), whose policy lets only the signature
authorizer decrypt secret values (docs/architecture.md, "Who may touch what").
"""

from __future__ import annotations

from keygate.config import ConfigError
from keygate.records import secret_ref
from keygate.storage import aws

_MISSING = frozenset({"ResourceNotFoundException"})
# A secret scheduled for deletion answers InvalidRequestException: it is gone for our purposes.
_GONE = frozenset({"ResourceNotFoundException", "InvalidRequestException"})


class SecretsManagerVault:
    def __init__(self, clients: aws.AwsClients, name_prefix: str, kms_key_id: str | None = None) -> None:
        """`kms_key_id` encrypts the secrets it creates (SECRETS_KMS_KEY_ID); reading and deleting need none."""
        self._clients = clients
        self.name_prefix = name_prefix
        self._kms_key_id = kms_key_id

    def name(self, key_id: str, version: str = "") -> str:
        """`keygate/<stage>/<key id>`, and `.../<key id>/<version>` for a rotated secret."""
        return f"{self.name_prefix}{secret_ref(key_id, version)}"

    def create(self, key_id: str, user_id: str, secret: str, version: str = "") -> None:
        if not self._kms_key_id:  # never fall back to the AWS managed key, which the whole account may use
            raise ConfigError("storage settings: SECRETS_KMS_KEY_ID is required to create secrets")
        aws.call("CreateSecret", self._clients.secretsmanager.create_secret, Name=self.name(key_id, version),
                 SecretString=secret, KmsKeyId=self._kms_key_id, Description="KeyGate API key HMAC secret",
                 Tags=[{"Key": "keygate:key_id", "Value": key_id}, {"Key": "keygate:user_id", "Value": user_id}])

    def delete(self, key_id: str, version: str = "") -> None:
        """Delete at once, without the recovery window; deleting a missing secret is fine."""
        try:
            aws.call("DeleteSecret", self._clients.secretsmanager.delete_secret, expected=_MISSING,
                     SecretId=self.name(key_id, version), ForceDeleteWithoutRecovery=True)
        except aws.Expected:
            return

    def read(self, key_id: str, version: str = "") -> str | None:
        """One of the key's secrets (the signature authorizer is the only reader); None once deleted."""
        try:
            response = aws.call("GetSecretValue", self._clients.secretsmanager.get_secret_value, expected=_GONE,
                                SecretId=self.name(key_id, version))
        except aws.Expected:
            return None
        secret: str | None = response.get("SecretString")
        return secret
