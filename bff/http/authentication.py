"""Authentication stage: resolve the caller once per request, before any route runs.

No `Authorization` header means anonymous; a header that is present but not a valid token
(expired, bad signature, `alg: none`, wrong audience, revoked, malformed) is refused here with
401, so no resolver ever runs for a caller who tried and failed to authenticate. A token that
cannot be checked because the token store is down is refused with 503 (fail closed). The
principal is left in the request's `RequestState`, where the GraphQL endpoint and passthrough
routes read it. The token endpoints (`/auth/...`) read their own credentials.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from bff.auth import ANONYMOUS, bearer_token
from bff.auth.authenticator import Authenticator
from bff.errors import Unauthenticated, UpstreamError
from bff.http.state import request_state
from bff.rendering.errors import error_response

OPEN_PATHS = ("/healthz", "/readyz", "/metrics", "/graphiql/static", "/auth/", "/.well-known/")


class AuthenticationStage:
    def __init__(self, app: ASGIApp, authenticator: Authenticator | None) -> None:
        self.app = app
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(OPEN_PATHS):
            await self.app(scope, receive, send)
            return
        authorization = accept = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"accept":
                accept = value.decode("latin-1")
        try:
            token = bearer_token(authorization)
            if token is None:
                principal = ANONYMOUS
            elif self.authenticator is None:
                raise Unauthenticated("This gateway accepts no tokens")
            else:
                principal = await self.authenticator.authenticate(token)
        except (Unauthenticated, UpstreamError) as error:
            await error_response(error, accept)(scope, receive, send)
            return
        request_state(scope).principal = principal
        await self.app(scope, receive, send)
