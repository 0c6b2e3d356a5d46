"""DELETE /v1/trade/api-keys/{api_key} (GaiaEx) and DELETE /v1/api-keys/{id} (ZDEX): revoke a key, for good."""

from keygate import api, wiring
from keygate.profiles import gaiaex, zdex


@api.route_handler(gaiaex.REVOKE_API_KEY, zdex.REVOKE_API_KEY, composition=wiring.management)
def handler(request, app):
    return app.lifecycle.revoke_api_key(request.user_id, request.key, step_up=request.step_up,
                                        source_ip=request.source_ip)
