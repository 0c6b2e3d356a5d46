"""POST /v1/trade/api-keys (GaiaEx) and POST /v1/api-keys (ZDEX): create a key; its secret is in this answer only."""

from keygate import api, wiring
from keygate.profiles import gaiaex, zdex


@api.route_handler(gaiaex.CREATE_API_KEY, zdex.CREATE_API_KEY, composition=wiring.management)
def handler(request, app):
    return app.lifecycle.create_api_key(request.user_id, request.body.domain(), step_up=request.step_up,
                                        source_ip=request.source_ip)
