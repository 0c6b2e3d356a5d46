"""DELETE /v1/trade/api-keys/all: revoke every key of the caller (emergency)."""

from keygate import api, wiring
from keygate.profiles import gaiaex


@api.route_handler(gaiaex.REVOKE_ALL_API_KEYS, composition=wiring.management)
def handler(request, app):
    return app.lifecycle.revoke_all_api_keys(request.user_id, step_up=request.step_up, source_ip=request.source_ip)
