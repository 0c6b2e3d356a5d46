"""PATCH /v1/trade/api-keys/{api_key}: change label, permissions or ip_whitelist."""

from keygate import api, service
from keygate.auth import STEP_UP_HEADER
from keygate.models import UpdateApiKeyRequest


@api.api_handler
def handler(event):
    request = api.parse_event(event)
    body = api.parse_body(request, UpdateApiKeyRequest)
    updated = service.update_api_key(request.user_id, request.path_parameters.get("api_key", ""), body,
                                     step_up_token=request.header(STEP_UP_HEADER), source_ip=request.source_ip)
    return api.json_response(200, updated)
