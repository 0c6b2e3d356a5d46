"""PATCH /v1/trade/api-keys/{api_key} (GaiaEx) and PATCH /v1/api-keys/{id} (ZDEX): change a key."""

from keygate import api, wiring
from keygate.profiles import gaiaex, zdex


@api.route_handler(gaiaex.UPDATE_API_KEY, zdex.UPDATE_API_KEY, composition=wiring.management)
def handler(request, app):
    return app.lifecycle.update_api_key(request.user_id, request.key, request.body.domain(),
                                        step_up=request.step_up, source_ip=request.source_ip)
