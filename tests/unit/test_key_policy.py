"""The secrets' customer managed KMS key: who may use it, proved from template.yaml (issue 13, finding 6).

Before, any principal of the account with `secretsmanager:GetSecretValue` on `*` could read every HMAC
secret (they were encrypted with the AWS managed key `aws/secretsmanager`, which any principal of the
account may use through Secrets Manager). Now they are encrypted with `SecretsKey`, whose key policy
lets the account administer the key but use it in three ways only, each through Secrets Manager, for
the stage's secrets, and for one role each (matched by `aws:PrincipalArn` against the role path the
function's `RolePath` sets, so the key policy does not depend on the roles: no circular dependency):

- the signature authorizer decrypts secret values (GetSecretValue);
- the create path generates data keys (CreateSecret), and decrypts only in the validation call Secrets
  Manager makes when a secret is given its key, whose encryption context carries
  `SecretVersionId: RequestToValidateKeyAccess` (AWS Secrets Manager User Guide, "Secrets Manager
  encryption context"): it cannot decrypt a stored secret, whose context names its real version.

moto ignores key policies (and KMS altogether for secrets): these tests evaluate the key policy and
the functions' own statements with tests/support/iam.py, as KMS does (the key policy must allow, and,
as it names the account, so must the caller's IAM policy).
"""

import copy

import pytest
from samcli.lib.translate.sam_template_validator import SamTemplateValidator
from samcli.yamlhelper import yaml_parse

from keygate_dev import template
from tests.support import iam
from tests.support.stack import REGION

PARAMETERS = iam.pseudo_parameters({"Stage": "prod"}, REGION, stack_name="keygate-prod")
KEY = template.resources("AWS::KMS::Key").get("SecretsKey", {})
KEY_POLICY = [iam.resolve(statement, PARAMETERS) for statement in
              KEY.get("Properties", {}).get("KeyPolicy", {}).get("Statement", [])]
ACCOUNT_ROOT = f"arn:aws:iam::{iam.ACCOUNT}:root"
SECRET = f"arn:aws:secretsmanager:{REGION}:{iam.ACCOUNT}:secret:keygate/prod/kgk_abc-AbCdEf"
VIA_SECRETS_MANAGER = f"secretsmanager.{REGION}.amazonaws.com"
READER = "SignatureAuthorizerFunction"
WRITER = "CreateApiKeyFunction"
ROTATOR = "RotateApiKeyFunction"  # issue 15: a rotation writes a new secret as a create does
WRITERS = (WRITER, ROTATOR)


def _use(function_id, action, *, secret=SECRET, version="d2c4a1f0-0000-4000-8000-000000000001",
         via=VIA_SECRETS_MANAGER, principal=None):
    context = {"aws:PrincipalArn": principal or iam.role_arn(function_id, PARAMETERS),
               "kms:EncryptionContext:SecretARN": secret, "kms:EncryptionContext:SecretVersionId": version}
    if via:
        context["kms:ViaService"] = via
    return iam.Request(action, "SecretsKey", context)


def _permitted(function_id, request):
    """KMS's answer: the key policy allows it, and (the policy naming the account) so does the role's."""
    identity = iam.function_statements(function_id, PARAMETERS) if function_id else []
    return iam.decide(KEY_POLICY, request) == "allowed" and iam.decide(identity, request) == "allowed"


def test_the_secrets_key_rotates_and_outlives_the_stack():
    assert KEY["Type"] == "AWS::KMS::Key"
    assert KEY["Properties"]["EnableKeyRotation"] is True
    assert KEY["Properties"].get("KeySpec", "SYMMETRIC_DEFAULT") == "SYMMETRIC_DEFAULT"  # what Secrets Manager uses
    # Deleting the key would make every secret unreadable: it stays when the stack goes
    assert (KEY["DeletionPolicy"], KEY["UpdateReplacePolicy"]) == ("Retain", "Retain")


def test_every_statement_names_this_account_only():
    # The conditions, not the principals, pick the roles: no wildcard principal, no other account
    assert KEY_POLICY and all(statement["Principal"] == {"AWS": ACCOUNT_ROOT} for statement in KEY_POLICY)


def test_the_signature_authorizer_decrypts_the_stages_secrets_through_secrets_manager():
    # Given the authorizer reading a secret (GetSecretValue makes Secrets Manager call Decrypt for it)
    # Then KMS allows it
    assert _permitted(READER, _use(READER, "kms:Decrypt"))
    # But not for another stage's secret, nor directly (not through Secrets Manager), nor another operation
    assert not _permitted(READER, _use(READER, "kms:Decrypt", secret=SECRET.replace("/prod/", "/dev/")))
    assert not _permitted(READER, _use(READER, "kms:Decrypt", via=None))
    assert not _permitted(READER, _use(READER, "kms:Decrypt", via=f"s3.{REGION}.amazonaws.com"))
    for action in ("kms:GenerateDataKey", "kms:Encrypt", "kms:ReEncryptFrom", "kms:CreateGrant"):
        assert not _permitted(READER, _use(READER, action)), action


@pytest.mark.parametrize("writer", WRITERS)
def test_the_create_and_rotate_paths_encrypt_but_decrypt_only_the_validation_request(writer):
    # Given the create (or rotate) path's CreateSecret: a data key for the value, and Secrets Manager's validation
    # calls (GenerateDataKey and Decrypt with SecretVersionId RequestToValidateKeyAccess)
    assert _permitted(writer, _use(writer, "kms:GenerateDataKey"))
    assert _permitted(writer, _use(writer, "kms:GenerateDataKey", version="RequestToValidateKeyAccess"))
    assert _permitted(writer, _use(writer, "kms:Decrypt", version="RequestToValidateKeyAccess"))
    # (a rotated secret, under its key id and version, too)
    assert _permitted(writer, _use(writer, "kms:GenerateDataKey", secret=SECRET.replace("-AbCdEf", "/0af3-AbCdEf")))
    # Then it still cannot decrypt a stored secret, whose context names its real version
    assert not _permitted(writer, _use(writer, "kms:Decrypt"))
    assert not _permitted(writer, _use(writer, "kms:GenerateDataKey", secret=SECRET.replace("/prod/", "/dev/")))
    assert not _permitted(writer, _use(writer, "kms:GenerateDataKey", via=None))


@pytest.mark.parametrize("function_id", sorted(set(template.function_ids()) - {READER, *WRITERS}))
def test_no_other_function_may_use_the_key(function_id):
    for action in ("kms:Decrypt", "kms:GenerateDataKey"):
        for version in ("d2c4a1f0-0000-4000-8000-000000000001", "RequestToValidateKeyAccess"):
            assert not _permitted(function_id, _use(function_id, action, version=version)), (action, version)


@pytest.mark.parametrize("principal", [
    f"arn:aws:iam::{iam.ACCOUNT}:role/Admin", f"arn:aws:iam::{iam.ACCOUNT}:user/operator", ACCOUNT_ROOT,
    # a role named like the authorizer's but outside its path
    f"arn:aws:iam::{iam.ACCOUNT}:role/keygate-prod-SignatureAuthorizerFunctionRole-AbCdEf123456",
])
def test_no_administrator_of_the_account_can_read_a_secret_through_the_key(principal):
    # Given principals of the account with any IAM policy they like (`*` on `*`)
    everything = [{"Effect": "Allow", "Action": "*", "Resource": "*"}]
    request = _use(READER, "kms:Decrypt", principal=principal)
    # When Secrets Manager asks KMS to decrypt a secret for them / Then the key policy refuses
    assert iam.decide(KEY_POLICY, request) != "allowed"
    assert iam.decide(everything, request) == "allowed"  # (their own policy is not what stops them)


@pytest.mark.parametrize("action", ["kms:DescribeKey", "kms:GetKeyPolicy", "kms:PutKeyPolicy",
                                    "kms:EnableKeyRotation", "kms:ScheduleKeyDeletion", "kms:TagResource"])
def test_the_account_keeps_administering_the_key(action):
    # Without these CloudFormation could neither create nor update the key (KMS refuses a policy that
    # locks its creator out); the account's IAM policies decide who may
    request = iam.Request(action, "SecretsKey", {"aws:PrincipalArn": f"arn:aws:iam::{iam.ACCOUNT}:role/Deployer"})
    assert iam.decide(KEY_POLICY, request) == "allowed"


def test_the_key_policy_names_the_roles_sam_creates():
    # Given the template as SAM transforms it (the roles SAM generates for the functions)
    validator = SamTemplateValidator(copy.deepcopy(template.load_template()), _NoManagedPolicies(), region=REGION)
    deployed = yaml_parse(validator.get_translated_template_if_valid())
    paths = {name.removesuffix("Role"): resource["Properties"].get("Path", "/")
             for name, resource in deployed["Resources"].items() if resource["Type"] == "AWS::IAM::Role"}
    # Then the two functions that use the key get role paths its policy matches (whatever name CloudFormation
    # then generates), and no other function has a role path
    for function_id, action, version in ((READER, "kms:Decrypt", "v1"),
                                         (WRITER, "kms:Decrypt", "RequestToValidateKeyAccess"),
                                         (ROTATOR, "kms:Decrypt", "RequestToValidateKeyAccess")):
        role = f"arn:aws:iam::{iam.ACCOUNT}:role{iam.resolve(paths[function_id], PARAMETERS)}any-generated-name"
        assert iam.decide(KEY_POLICY, _use(function_id, action, version=version, principal=role)) == "allowed"
    # (and the step-up function, the one signer of StepUpSigningKey: tests/unit/test_step_up_key.py)
    assert {function_id for function_id in template.function_ids() if paths[function_id] != "/"} == {
        READER, *WRITERS, "StepUpFunction"}
    # And the key policy names no role itself (a role that named the key and a key that named the role
    # would depend on each other)
    assert "Role" not in str(KEY.get("Properties", {}).get("KeyPolicy"))


def test_only_the_create_and_rotate_paths_are_told_which_key_encrypts_secrets():
    functions = template.resources("AWS::Serverless::Function")
    told = {function_id: resource["Properties"].get("Environment", {}).get("Variables", {})["SECRETS_KMS_KEY_ID"]
            for function_id, resource in functions.items()
            if "SECRETS_KMS_KEY_ID" in resource["Properties"].get("Environment", {}).get("Variables", {})}
    assert told == {WRITER: {"Ref": "SecretsKey"}, ROTATOR: {"Ref": "SecretsKey"}}


class _NoManagedPolicies:
    def load(self):
        return {}


def test_a_secret_is_never_created_without_the_stacks_key():
    # Given the create path without SECRETS_KMS_KEY_ID (a mis-deployed function)
    from keygate.config import ConfigError
    from keygate.storage import aws
    from keygate.storage.secrets import SecretsManagerVault

    vault = SecretsManagerVault(aws.AwsClients(None), "keygate/prod/")
    # When it would create a secret / Then it refuses rather than fall back to the AWS managed key, which every
    # principal of the account may use through Secrets Manager (no AWS call is made)
    with pytest.raises(ConfigError, match="SECRETS_KMS_KEY_ID"):
        vault.create("kgk_abc", "alice", "kgs_never-stored")
