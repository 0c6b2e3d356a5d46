"""POST /v1/trade/api-keys/{api_key}/rotate (GaiaEx) and POST /v1/api-keys/{id}/rotate (ZDEX): a new secret (or
public key), the previous one valid until the grace ends."""

from keygate import api, wiring
from keygate.profiles import gaiaex, zdex


@api.route_handler(gaiaex.ROTATE_API_KEY, zdex.ROTATE_API_KEY, composition=wiring.management)
def handler(request, app):
    return app.lifecycle.rotate_api_key(request.user_id, request.key, request.body.domain(),
                                        step_up=request.step_up, source_ip=request.source_ip)
