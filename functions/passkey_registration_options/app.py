"""POST /v1/trade/passkeys/registration/options: options for navigator.credentials.create()."""

from keygate import api, routes
from keygate.stepup_models import CeremonyOptions
from keygate.stepup_service import passkey_functions


@api.route_handler(routes.PASSKEY_REGISTRATION_OPTIONS, composition=passkey_functions)
def handler(request, app):
    return CeremonyOptions(options=app.passkeys.registration_options(request.user_id).options)
