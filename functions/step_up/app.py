"""POST /v1/trade/step-up: verify the passkey assertion and answer the step-up token it confirms."""

from keygate import api, routes
from keygate.stepup_models import StepUpToken
from keygate.stepup_service import passkey_functions


@api.route_handler(routes.STEP_UP, composition=passkey_functions)
def handler(request, app):
    issued = app.step_up(request.user_id, request.body.credential, source_ip=request.source_ip)
    return StepUpToken(step_up_token=issued.token, expires_at=issued.expires_at)
