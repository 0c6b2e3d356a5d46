"""DELETE /v1/trade/api-keys/all: revoke every key of the caller (emergency)."""

from keygate import api, service
from keygate.auth import STEP_UP_HEADER


@api.api_handler
def handler(event):
    request = api.parse_event(event)
    revoked = service.revoke_all_api_keys(request.user_id, step_up_token=request.header(STEP_UP_HEADER),
                                          source_ip=request.source_ip)
    return api.json_response(200, revoked)
