"""`POST`/`GET /graphql`: the GraphQL door of the gateway.

Order of work per request: negotiate the media type, read the request, resolve a persisted
query (APQ, persisted-only mode), prepare (cached parse + validation), refuse mutations over
GET, check the query limits (depth, aliases, cost: before any resolver, so before any
upstream call), build the `RequestContext` from the principal the auth stage resolved,
execute (cancelled if the client hangs up meanwhile), mask errors, answer with orjson (the
accepted cost in `extensions.cost`).

A client that reads `multipart/mixed` (`bff.rendering.multipart`) and sends a document with
`@defer` gets its answer in parts (`bff.graphql.incremental`), each rendered and masked as the
one-piece answer is; everyone else gets one complete response.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse

from bff.auth.issuing import TokenService
from bff.errors import BadUserInput, BffError
from bff.graph import Graph
from bff.graph.context import RequestContext
from bff.graph.loader import BatchHook
from bff.graphql.disconnect import ClientDisconnected, cancel_on_disconnect
from bff.graphql.executor import GraphQLExecutor, RequestErrors, is_mutation
from bff.graphql.incremental import Deferred, Increment
from bff.graphql.protocol import MalformedRequest, read_request
from bff.http.graphiql import graphiql_html, wants_graphiql
from bff.http.state import RequestState, request_state
from bff.limits import QueryLimits
from bff.persisted import PersistedQueries
from bff.rendering.errors import error_response, format_errors, request_errors_response
from bff.rendering.media import GRAPHQL_RESPONSE, JSON, NotAcceptable, negotiate
from bff.rendering.multipart import CLOSING, CONTENT_TYPE, OPENING, accepts_multipart, part
from bff.upstream import UpstreamPool
from bff.upstream.header_policy import collect_answers

NO_STORE = {"Cache-Control": "no-store"}
DEFER = "@defer"  # a document without it has nothing to answer in parts


class Answer(Response):
    """A 200 with a rendered body: its raw headers made in one go, as `Response.init_headers`
    would make them (length, then type: never a `text/` type, so no charset), without
    that Python pass and its checks on every GraphQL answer."""

    def __init__(self, body: bytes, media_type: str, headers: list[tuple[bytes, bytes]]) -> None:
        self.status_code = 200
        self.media_type = media_type
        self.body = body
        self.background = None
        self.raw_headers = [
            (b"content-length", str(len(body)).encode("latin-1")),
            (b"content-type", media_type.encode("latin-1")),
            *headers,
        ]


def graphql_response(
    body: Mapping[str, Any], media_type: str, headers: Iterable[tuple[str, str]] = ()
) -> Response:
    raw = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in headers]
    return Answer(orjson.dumps(body), media_type, raw)


def _accept_and_type(headers: Iterable[tuple[bytes, bytes]]) -> tuple[str | None, str | None]:
    """`Accept` and `Content-Type` (each the first given) in one pass over the raw headers:
    Starlette's `request.headers.get` builds a `Headers` and scans them once per name."""
    accept = content_type = None
    for name, value in headers:
        if name == b"accept":
            if accept is None:
                accept = value.decode("latin-1")
        elif name == b"content-type" and content_type is None:
            content_type = value.decode("latin-1")
    return accept, content_type


class GraphQLEndpoint:
    def __init__(
        self,
        executor: GraphQLExecutor,
        graph: Graph,
        pools: Mapping[str, UpstreamPool],
        *,
        graphiql: bool = True,
        graphiql_headers: Mapping[str, str] | None = None,
        tokens: TokenService | None = None,
        limits: QueryLimits | None = None,
        persisted: PersistedQueries | None = None,
        observe_batch: BatchHook | None = None,
    ) -> None:
        self.executor = executor
        self.graph = graph
        self.observe_batch = observe_batch
        self.pools = pools
        self.graphiql = graphiql
        self.graphiql_headers = graphiql_headers
        self.tokens = tokens
        self.limits = limits
        self.persisted = persisted

    async def endpoint(self, request: Request) -> Response:
        accept, content_type = _accept_and_type(request.scope["headers"])
        method = request.scope["method"]
        if method == "GET" and self.graphiql and wants_graphiql(accept):
            page = graphiql_html(request.url.path, default_headers=self.graphiql_headers)
            return HTMLResponse(page, headers=NO_STORE)  # it may hold the demo's token
        multipart = accepts_multipart(accept)
        try:
            media_type = negotiate(accept)
        except NotAcceptable as error:
            if not multipart:
                return error_response(BadUserInput(str(error)), status=406, media_type=JSON)
            media_type = JSON  # errors before execution; an answer is multipart
        try:
            return await self.handle(
                request, media_type, multipart=multipart, content_type=content_type
            )
        except MalformedRequest as error:
            headers = {"Allow": "GET, POST"} if error.status == 405 else None
            return error_response(
                BadUserInput(error.message),
                status=error.status,
                media_type=media_type,
                headers=headers,
            )
        except RequestErrors as error:
            return request_errors_response(error.errors, media_type)
        except ClientDisconnected:
            return Response(status_code=499)  # nobody reads it: the client is gone
        except BffError as error:  # limits and persisted queries: request errors, or a 503
            if not error.expose:
                raise  # a bug: the errors stage masks and logs it
            status = error.status
            if status == 400 and media_type != GRAPHQL_RESPONSE:
                status = 200
            request_state(request.scope).error_codes.append(error.code)
            return error_response(error, status=status, media_type=media_type)

    async def handle(
        self,
        request: Request,
        media_type: str,
        *,
        multipart: bool = False,
        content_type: str | None = None,
    ) -> Response:
        method = request.scope["method"]
        gql = await read_request(request, method, content_type)
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
        if method == "GET" and is_mutation(operation):
            raise MalformedRequest("Mutations are only accepted over POST", 405)
        cost = None
        if limits is not None:
            cost = limits.check(prepared.shapes, prepared.document, operation, gql.variables)
        state = request_state(request.scope)
        context = self.graph.context(
            state.principal,
            self.pools,
            request_id=state.request_id,
            tokens=self.tokens,
            observe=self.observe_batch,
        )
        if multipart and DEFER in query:
            return await self.in_parts(
                request, prepared, gql.operation_name, gql.variables, context, cost
            )
        execution = self.executor.execute(
            prepared,
            operation_name=gql.operation_name,
            variables=gql.variables,
            context=context,
        )
        used = collect_answers(mutation=is_mutation(operation))  # for the header policy
        try:
            result = await cancel_on_disconnect(request.receive, execution)
        except ClientDisconnected:
            context.loaders.cancel_pending()
            raise
        body: dict[str, Any] = {}
        if result.errors:
            body["errors"] = format_errors(result.errors, state.trace_id)
        body["data"] = result.data
        if cost is not None:
            body["extensions"] = {"cost": cost}
        return graphql_response(body, media_type, used.response_headers(errors=bool(result.errors)))

    async def in_parts(
        self,
        request: Request,
        prepared: Any,
        operation_name: str | None,
        variables: Mapping[str, Any] | None,
        context: RequestContext[Any, Any],
        cost: Any,
    ) -> Response:
        """The operation with its `@defer`s honoured, as `multipart/mixed` parts."""
        execution = self.executor.execute_deferred(
            prepared, operation_name=operation_name, variables=variables, context=context
        )
        try:
            deferred = await cancel_on_disconnect(request.receive, execution)
        except ClientDisconnected:
            context.loaders.cancel_pending()
            raise
        state = request_state(request.scope)
        body = parts_of(deferred, state, cost, context)
        # The first part leaves before the deferred calls have answered, so nothing is known
        # of their freshness yet: a streamed answer is never cached.
        return StreamingResponse(body, 200, media_type=CONTENT_TYPE, headers=NO_STORE)


async def parts_of(
    deferred: Deferred, state: RequestState, cost: Any, context: RequestContext[Any, Any]
) -> AsyncIterator[bytes]:
    """The parts of one answer: the first at once, each later one as it completes. A client
    that leaves midway stops the deferred work (and its pending batch calls)."""
    done = False
    try:
        first: dict[str, Any] = {}
        if deferred.errors:
            first["errors"] = format_errors(deferred.errors, state.trace_id)
        first["data"] = deferred.data
        first["hasNext"] = deferred.parts is not None
        if cost is not None:
            first["extensions"] = {"cost": cost}
        yield OPENING + part(first)
        if deferred.parts is not None:
            async for later in deferred.parts:
                payload: dict[str, Any] = {}
                if later.increments:
                    payload["incremental"] = [_increment(i, state) for i in later.increments]
                payload["hasNext"] = later.has_next
                yield part(payload)
        yield CLOSING
        done = True
    finally:
        if not done:
            await deferred.close()
            context.loaders.cancel_pending()


def _increment(increment: Increment, state: RequestState) -> dict[str, Any]:
    """One deferred fragment's entry; its errors are masked and noted like the first part's."""
    entry: dict[str, Any] = {"data": increment.data, "path": increment.path}
    if increment.label is not None:
        entry["label"] = increment.label
    if increment.errors:
        entry["errors"] = errors = format_errors(increment.errors, state.trace_id)
        codes = state.error_codes
        for error in errors:
            code = error.get("extensions", {}).get("code")
            if code and code not in codes:
                codes.append(code)
    return entry
