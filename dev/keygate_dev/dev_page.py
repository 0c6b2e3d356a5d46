"""The local server's dev-only passkey page (never deployed): the app's passkey flow in a real browser.

`keygate dev serve` adds two routes to its gateway, outside /v1 (no API route is there):

- GET /dev/passkeys: the page (passkey_page.html): sign in, register a passkey, review a key creation
  (its one-sentence summary shown before the authenticator is asked), approve it with the passkey;
- GET /dev/session?user=U: a session token for U from the local identity provider, as `keygate dev token`
  prints it (the local server already trusts whoever can run that command on this machine).

Open it on http://localhost:<port>/dev/passkeys: the local RP ID is `localhost`, so WebAuthn refuses the
same page on 127.0.0.1 (browsers refuse IP addresses as RP IDs).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from flask import Response, jsonify, request

from keygate_dev.identity import LocalIdentityProvider

PAGE_PATH = "/dev/passkeys"
SESSION_PATH = "/dev/session"
_USER = re.compile(r"[A-Za-z0-9._@-]{1,64}")


def install(app: Any, identity: LocalIdentityProvider, demo_user: str) -> None:
    """Add the page and its session route to the local gateway's Flask app."""
    html = Path(__file__).with_name("passkey_page.html").read_text()

    def page() -> Response:
        return Response(html.replace('value="demo"', f'value="{demo_user}"'), mimetype="text/html")

    def session() -> Response:
        user = request.args.get("user") or demo_user
        if not _USER.fullmatch(user):
            answer = jsonify(error={"code": "INVALID_REQUEST", "message": "user: 1 to 64 of A-Z a-z 0-9 . _ @ -"})
            answer.status_code = 400
            return answer
        return jsonify(user=user, session_token=identity.session_token(user))

    app.add_url_rule(PAGE_PATH, "keygate_dev_passkey_page", page, methods=["GET"])
    app.add_url_rule(SESSION_PATH, "keygate_dev_session", session, methods=["GET"])
