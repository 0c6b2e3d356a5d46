"""POST /v1/secret-scanning/github: GitHub reports leaked secrets; their keys are revoked (keygate.secret_scanning).

Not `api.route_handler`: the signature covers the raw body, which is a JSON list, not a model."""

import json

from keygate import api, apigw, wiring
from keygate.routes import GITHUB_SECRET_SCANNING


def _serve(event):
    answers = wiring.secret_scanning().report(apigw.raw_body(event), event.get("headers") or {},
                                              source_ip=apigw.source_ip(event) or "unknown")
    return apigw.json_response(200, json.dumps(answers))


handler = api.api_handler(_serve)
handler.routes = (GITHUB_SECRET_SCANNING,)
