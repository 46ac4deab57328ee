"""`POST`/`GET /graphql`: the GraphQL door of the gateway.

Order of work per request: negotiate the media type, read the request, prepare (cached
parse + validation), refuse mutations over GET, build the `RequestContext` from the
principal the auth stage resolved, execute, mask errors, answer with orjson.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from bff.auth.issuing import TokenService
from bff.graphql.executor import GraphQLExecutor, RequestErrors, is_mutation
from bff.graphql.masking import format_errors
from bff.graphql.protocol import GRAPHQL_RESPONSE, MalformedRequest, negotiate, read_request
from bff.http.graphiql import graphiql_html, wants_graphiql
from bff.http.state import request_state
from bff.upstream import UpstreamPool
from resolvers.context import RequestContext


def graphql_response(body: Mapping[str, Any], media_type: str, status: int = 200) -> Response:
    headers = {"Allow": "GET, POST"} if status == 405 else None
    return Response(orjson.dumps(body), status, headers=headers, media_type=media_type)


class GraphQLEndpoint:
    def __init__(
        self,
        executor: GraphQLExecutor,
        pools: Mapping[str, UpstreamPool],
        *,
        graphiql: bool = True,
        tokens: TokenService | None = None,
    ) -> None:
        self.executor = executor
        self.pools = pools
        self.graphiql = graphiql
        self.tokens = tokens

    async def endpoint(self, request: Request) -> Response:
        accept = request.headers.get("accept")
        if request.method == "GET" and self.graphiql and wants_graphiql(accept):
            return HTMLResponse(graphiql_html(endpoint=request.url.path))
        try:
            media_type = negotiate(accept)
        except MalformedRequest as error:
            return graphql_response(self.error_body(error.message), "application/json", 406)
        try:
            return await self.handle(request, media_type)
        except MalformedRequest as error:
            return graphql_response(self.error_body(error.message), media_type, error.status)
        except RequestErrors as error:
            status = 400 if media_type == GRAPHQL_RESPONSE else 200
            return graphql_response({"errors": format_errors(error.errors)}, media_type, status)

    async def handle(self, request: Request, media_type: str) -> Response:
        gql = await read_request(request)
        prepared = self.executor.prepare(gql.query)
        operation = self.executor.operation(prepared, gql.operation_name)
        if request.method == "GET" and is_mutation(operation):
            raise MalformedRequest("Mutations are only accepted over POST", 405)
        state = request_state(request.scope)
        request_id = state.request_id
        context = RequestContext.build(state.principal, self.pools, request_id, self.tokens)
        result = await self.executor.execute(
            prepared,
            operation_name=gql.operation_name,
            variables=gql.variables,
            context=context,
        )
        body: dict[str, Any] = {}
        if result.errors:
            body["errors"] = format_errors(result.errors, request_id)
        body["data"] = result.data
        return graphql_response(body, media_type)

    @staticmethod
    def error_body(message: str) -> dict[str, Any]:
        return {"errors": format_errors([GraphQLError(message)])}
