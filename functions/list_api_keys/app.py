"""GET /v1/trade/api-keys: the caller's keys, newest first, never a secret."""

from keygate import api, service


@api.api_handler
def handler(event):
    request = api.parse_event(event)
    return api.json_response(200, service.list_api_keys(request.user_id))
