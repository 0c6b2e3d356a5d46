"""keygate.storage.aws's sessions: botocore's model loader finding the one service it loads instead of listing
every service botocore ships, and loading what botocore's own loader loads (docs/architecture.md, "Cold start")."""

import json
import os

import botocore.loaders
import botocore.session
import pytest
from botocore.exceptions import DataNotFoundError, EndpointConnectionError

from keygate.storage import aws

DATA_TYPES = ("service-2", "endpoint-rule-set-1", "paginators-1", "waiters-2")
# What KeyGate's functions ask for, what botocore asks for itself (STS for web identity, SSO), and names
# botocore does not know: unknown, paths to a known one, a file beside the services.
SERVICES = ("dynamodb", "secretsmanager", "events", "kms", "sts", "sso", "no-such-service", "./kms",
            "dynamodb/../dynamodb", "endpoints.json")


@pytest.fixture
def region(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_DATA_PATH", raising=False)


@pytest.fixture
def listed_directories(monkeypatch):
    """Every directory os.listdir lists from now on."""
    listed = []
    real_listdir = os.listdir

    def listdir(path="."):
        listed.append(os.fspath(path))
        return real_listdir(path)

    monkeypatch.setattr(os, "listdir", listdir)
    return listed


def _loaded(loader, service, type_name, api_version=None):
    """What a loader gives for a service's data: the data, or its error's type and message."""
    try:
        return loader.load_service_model(service, type_name, api_version=api_version)
    except DataNotFoundError as error:  # UnknownServiceError included
        return type(error).__name__, str(error)


@pytest.mark.parametrize("type_name", DATA_TYPES)
def test_each_service_loads_as_botocores_own_loader_loads_it(region, type_name):
    # Given botocore's own loader, and KeyGate's on the same search paths
    botocores = botocore.session.get_session().get_component("data_loader")
    ours = aws.new_session().get_component("data_loader")
    for service in SERVICES:
        # When each loads this data of the service
        # Then both give the same data, or the same error with the same message
        assert _loaded(ours, service, type_name) == _loaded(botocores, service, type_name), service
    assert not isinstance(_loaded(ours, "dynamodb", type_name), tuple)


def test_an_older_api_version_asked_for_is_the_one_loaded(region):
    # Given botocore's own loader, and KeyGate's
    botocores = botocore.session.get_session().get_component("data_loader")
    ours = aws.new_session().get_component("data_loader")
    # When each loads the older of a service's two API versions (App Mesh ships 2018-10-01 and 2019-01-25)
    older = _loaded(ours, "appmesh", "service-2", api_version="2018-10-01")
    # Then both load that version
    assert older["metadata"]["apiVersion"] == "2018-10-01"
    assert older == _loaded(botocores, "appmesh", "service-2", api_version="2018-10-01")


def test_the_session_still_lists_every_service_after_making_a_client(region):
    # Given a KeyGate session that made a client
    session = aws.new_session()
    session.create_client("dynamodb")
    # When it is asked for every service it knows
    # Then it lists what a session with botocore's own loader lists
    assert session.get_available_services() == botocore.session.get_session().get_available_services()


def test_a_client_is_made_without_listing_every_service_botocore_ships(region, listed_directories):
    # Given KeyGate's clients (botocore's own loader lists all of its some 440 service directories)
    clients = aws.AwsClients("http://127.0.0.1:9")
    # When its DynamoDB and Secrets Manager clients are made, as the signature authorizer's first request does
    dynamodb, secrets = clients.dynamodb, clients.secretsmanager
    # Then they are those services' clients, and only the search paths and those services' directories were listed
    assert (dynamodb.meta.service_model.service_name, secrets.meta.service_model.service_name) == (
        "dynamodb", "secretsmanager")
    search_paths = botocore.session.get_session().get_component("data_loader").search_paths
    assert listed_directories
    assert set(listed_directories) <= {*search_paths, *(os.path.join(path, service) for path in search_paths
                                                         for service in ("dynamodb", "secretsmanager"))}


def test_a_client_botocore_makes_itself_on_the_session_is_made(region):
    # Given a session that made KeyGate's DynamoDB client
    session = aws.new_session()
    session.create_client("dynamodb")
    # When botocore makes a client of its own on it, as web identity credentials make an STS client
    sts = session.create_client("sts")
    # Then it is made like any other
    assert sts.meta.service_model.service_name == "sts"


def test_web_identity_credentials_reach_sts(region, monkeypatch, tmp_path):
    # Given web identity credentials only (as on EKS or in CI), every endpoint unreachable
    token = tmp_path / "token"
    token.write_text("a web identity token")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/keygate")
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token))
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9/sts")
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9/dynamodb")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    # When a KeyGate client makes a call, its credentials first asking STS for a role's
    # Then the call fails on reaching STS's endpoint, the STS client made
    with pytest.raises(EndpointConnectionError, match="127.0.0.1:9/sts"):
        aws.AwsClients(None).dynamodb.get_item(TableName="keys", Key={"pk": {"S": "a"}})


def test_models_outside_botocores_data_are_found_as_botocore_finds_them(region, monkeypatch, tmp_path):
    # Given AWS_DATA_PATH holding a newer DynamoDB model and a service botocore does not ship
    builtin = botocore.loaders.Loader(include_default_search_paths=False,
                                      extra_search_paths=[botocore.loaders.Loader.BUILTIN_DATA_PATH])
    newer = builtin.load_service_model("dynamodb", "service-2")
    newer["metadata"]["apiVersion"] = "2099-01-01"
    _write(tmp_path / "dynamodb" / "2099-01-01" / "service-2.json", newer)
    for type_name in ("service-2", "endpoint-rule-set-1"):
        _write(tmp_path / "keygate-only" / "2012-11-05" / f"{type_name}.json",
               builtin.load_service_model("sqs", type_name))
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))
    # When KeyGate's session makes clients of both
    clients = aws.AwsClients("http://127.0.0.1:9")
    dynamodb, only_there = clients.client("dynamodb"), clients.client("keygate-only")
    # Then it loaded them from there, as botocore's loader does
    assert dynamodb.meta.service_model.api_version == "2099-01-01"
    assert only_there.meta.service_model.service_name == "keygate-only"
    botocores = botocore.session.get_session().get_component("data_loader")
    ours = aws.new_session().get_component("data_loader")
    assert ours.search_paths == botocores.search_paths
    assert ours.search_paths[0] == str(tmp_path)
    for service in ("dynamodb", "keygate-only"):
        assert ours.load_service_model(service, "service-2") == botocores.load_service_model(service, "service-2")


def _write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
