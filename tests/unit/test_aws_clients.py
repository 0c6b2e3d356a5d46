"""keygate.storage.aws's sessions: botocore's model loader looking only for the services asked for, and finding
them as botocore's own loader does (docs/architecture.md, "Cold start")."""

import os

import botocore.loaders
import botocore.session
import pytest
from botocore.exceptions import UnknownServiceError

from keygate.storage import aws

DATA_TYPES = ("service-2", "endpoint-rule-set-1", "paginators-1", "waiters-2")
# What KeyGate's functions and `keygate dev` ask for, and names botocore does not ship.
SERVICES = ("dynamodb", "secretsmanager", "events", "kms", "sqs", "no-such-service")


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


@pytest.mark.parametrize("type_name", DATA_TYPES)
def test_the_asked_services_are_those_botocore_lists_with_that_data(region, type_name):
    # Given botocore's own loader, and ours on the same search paths, asked for KeyGate's services and unknown names
    botocores = botocore.session.get_session().get_component("data_loader")
    ours = aws.new_session().get_component("data_loader")
    ours.asked.update(SERVICES)
    # When each lists the services that have this data
    listed = ours.list_available_services(type_name)
    # Then ours names exactly the asked services botocore's names (which is not all of them)
    expected = sorted(set(botocores.list_available_services(type_name)) & set(SERVICES))
    assert listed == expected
    assert "dynamodb" in expected


def test_a_client_is_made_without_listing_every_service_botocore_ships(region, listed_directories):
    # Given a session of KeyGate's clients (botocore's own loader lists all of its some 400 service directories)
    clients = aws.AwsClients("http://127.0.0.1:9")
    # When its DynamoDB and Secrets Manager clients are made, as the signature authorizer's first request does
    dynamodb, secrets = clients.dynamodb, clients.secretsmanager
    # Then they are the services' clients, and only those services' directories were listed
    assert (dynamodb.meta.service_model.service_name, secrets.meta.service_model.service_name) == (
        "dynamodb", "secretsmanager")
    assert {os.path.basename(path) for path in listed_directories} <= {"dynamodb", "secretsmanager"}
    assert listed_directories


def test_a_service_botocore_does_not_ship_is_refused_as_botocore_refuses_it(region):
    # Given KeyGate's clients
    clients = aws.AwsClients(None)
    # When a client of a service botocore has no model for is asked for
    # Then botocore's own error says so
    with pytest.raises(UnknownServiceError, match="no-such-service"):
        clients.client("no-such-service")


def test_the_loader_keeps_the_search_paths_aws_data_path_names(region, monkeypatch, tmp_path):
    # Given AWS_DATA_PATH naming a directory of extra models
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))
    # When KeyGate's session is made
    loader = aws.new_session().get_component("data_loader")
    # Then its loader searches where botocore's would, that directory first
    assert loader.search_paths == botocore.loaders.create_loader(str(tmp_path)).search_paths
    assert loader.search_paths[0] == str(tmp_path)
