"""GET /v1/trade/api-keys/self (signature authorizer): the calling key's restrictions."""

from keygate import api, service


@api.api_handler
def handler(event):
    request = api.parse_event(event)
    key_id = (event.get("requestContext", {}).get("authorizer") or {}).get("key_id", "")
    return api.json_response(200, service.describe_calling_key(request.user_id, key_id))
