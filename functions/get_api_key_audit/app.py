"""GET /v1/trade/api-keys/{api_key}/audit?limit=: lifecycle log, newest first."""

from keygate import api, service

DEFAULT_LIMIT, MAX_LIMIT = 20, 100


@api.api_handler
def handler(event):
    request = api.parse_event(event)
    limit = api.query_int(request, "limit", default=DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
    audit = service.get_api_key_audit(request.user_id, request.path_parameters.get("api_key", ""), limit=limit)
    return api.json_response(200, audit)
