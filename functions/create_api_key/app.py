"""POST /v1/trade/api-keys: create a key; the secret is in this response only."""

from keygate import api, service
from keygate.auth import STEP_UP_HEADER
from keygate.models import CreateApiKeyRequest


@api.api_handler
def handler(event):
    request = api.parse_event(event)
    body = api.parse_body(request, CreateApiKeyRequest, empty_means={})
    created = service.create_api_key(request.user_id, body, step_up_token=request.header(STEP_UP_HEADER),
                                     source_ip=request.source_ip)
    return api.json_response(201, created)
