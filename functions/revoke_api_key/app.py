"""DELETE /v1/trade/api-keys/{api_key}: revoke one key, irreversibly."""

from keygate import api, service
from keygate.auth import STEP_UP_HEADER


@api.api_handler
def handler(event):
    request = api.parse_event(event)
    revoked = service.revoke_api_key(request.user_id, request.path_parameters.get("api_key", ""),
                                     step_up_token=request.header(STEP_UP_HEADER), source_ip=request.source_ip)
    return api.json_response(200, revoked)
