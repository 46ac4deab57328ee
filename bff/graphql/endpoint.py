"""`POST`/`GET /graphql`: the GraphQL door of the gateway.

Order of work per request: negotiate the media type, read the request, resolve a persisted
query (APQ, persisted-only mode), prepare (cached parse + validation), refuse mutations over
GET, check the query limits (depth, aliases, cost: before any resolver, so before any
upstream call), build the `RequestContext` from the principal the auth stage resolved,
execute, mask errors, answer with orjson (the accepted cost in `extensions.cost`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from bff.errors import BffError, error_body
from bff.graphql.executor import GraphQLExecutor, RequestErrors, is_mutation
from bff.graphql.masking import format_errors
from bff.graphql.protocol import GRAPHQL_RESPONSE, MalformedRequest, negotiate, read_request
from bff.http.graphiql import graphiql_html, wants_graphiql
from bff.http.state import request_state
from bff.limits import QueryLimits
from bff.persisted import PersistedQueries
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
        limits: QueryLimits | None = None,
        persisted: PersistedQueries | None = None,
    ) -> None:
        self.executor = executor
        self.pools = pools
        self.graphiql = graphiql
        self.limits = limits
        self.persisted = persisted

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
        except BffError as error:  # limits and persisted queries: request errors, or a 503
            if not error.expose:
                raise  # a bug: the errors stage masks and logs it
            status = error.status
            if status == 400 and media_type != GRAPHQL_RESPONSE:
                status = 200
            request_state(request.scope).error_codes.append(error.code)
            return graphql_response({"errors": [error_body(error)]}, media_type, status)

    async def handle(self, request: Request, media_type: str) -> Response:
        gql = await read_request(request)
        query = gql.query
        if self.persisted is not None and self.persisted.applies(query, gql.extensions):
            query = await self.persisted.resolve(query, gql.extensions)
        if query is None:
            raise MalformedRequest("The request has no query")
        limits = self.limits
        if limits is not None:
            limits.check_variables(gql.variables)
        prepared = self.executor.prepare(query)
        operation = self.executor.operation(prepared, gql.operation_name)
        if request.method == "GET" and is_mutation(operation):
            raise MalformedRequest("Mutations are only accepted over POST", 405)
        cost = None
        if limits is not None:
            cost = limits.check(prepared.shapes, prepared.document, operation, gql.variables)
        state = request_state(request.scope)
        request_id = state.request_id
        context = RequestContext.build(state.principal, self.pools, request_id)
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
        if cost is not None:
            body["extensions"] = {"cost": cost}
        return graphql_response(body, media_type)

    @staticmethod
    def error_body(message: str) -> dict[str, Any]:
        return {"errors": format_errors([GraphQLError(message)])}
