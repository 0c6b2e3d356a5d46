"""GET /v1/trade/api-keys/{api_key}/audit?limit=: a key's lifecycle log, newest first."""

from keygate import api, wiring
from keygate.profiles import gaiaex


@api.route_handler(gaiaex.GET_API_KEY_AUDIT, composition=wiring.management)
def handler(request, app):
    return app.lifecycle.get_api_key_audit(request.user_id, request.key, limit=request.query["limit"])
