"""`RetryTransport`: the outermost layer; sends a failed attempt again, elsewhere, when safe.

When (pure, `retry_after_error` / `retry_after_status`):

- idempotent requests (GET, HEAD, ...: every batch load is a GET) that failed to connect, hit a
  stale kept-alive connection (`StaleConnection`) or a connection closed before any byte of
  the answer (an instance killed mid-request), or got 502/503/504;
- any request, POST included, only when it provably never left: the connection could not be
  opened (`ConnectFailed`, `ConnectTimedOut`), or the error says `request_sent = False`.

A time-out waiting for the answer is not retried: the total budget is what ran out. Every
attempt shares the call's deadline (`timeout.total`); each attempt's connect is bounded by
`timeout.connect` below. A retry goes to an instance not tried yet (`AVOID`), and only if the
upstream's `RetryBudget` has room. The last attempt's reply or error is what the caller gets.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import TypeVar

from bff.upstream.budget import RetryBudget
from bff.upstream.http11 import ConnectFailed, ConnectionLost, ConnectTimedOut, TransportError
from bff.upstream.instance import Instance
from bff.upstream.request import Request
from bff.upstream.streaming import StreamedResponse
from bff.upstream.transport import AVOID, Reply, Transport

RETRY_STATUSES = frozenset({502, 503, 504})


def retry_after_status(request: Request, status: int) -> bool:
    return status in RETRY_STATUSES and request.idempotent


def retry_after_error(request: Request, error: TransportError) -> bool:
    if isinstance(error, ConnectFailed | ConnectTimedOut):
        return True  # no connection, no byte sent
    if getattr(error, "request_sent", True) is False:
        return True
    # a stale kept-alive connection, or one reset before any byte of the answer (an instance
    # killed mid-request): the request may be sent again when doing it twice is harmless
    return request.idempotent and isinstance(error, ConnectionLost) and not error.received


# What an attempt returns: a whole reply, or a streamed one (closed when it is given up on).
Answer = TypeVar("Answer", Reply, StreamedResponse)


class RetryTransport(Transport):
    def __init__(self, inner: Transport, *, attempts: int, budget: RetryBudget | None = None):
        self.inner = inner
        self.attempts = attempts
        self.budget = budget or RetryBudget()

    async def send(self, request: Request, deadline: float, attempt: int = 1) -> Reply:
        """`_call` written out for whole answers: every upstream call passes here, and one
        coroutine layer fewer is two Python calls fewer per call."""
        budget = self.budget
        budget.requests += 1
        try:
            try:
                answer = await self.inner.send(request, deadline, attempt)
            except TransportError as error:
                return await self._again(request, deadline, attempt, error, self.inner.send)
            if answer.status not in RETRY_STATUSES or not request.idempotent:
                return answer
            return await self._again(request, deadline, attempt, answer, self.inner.send)
        finally:
            budget.requests -= 1

    async def stream(
        self,
        request: Request,
        deadline: float,
        attempt: int = 1,
        *,
        body: AsyncIterable[bytes] | None = None,
        content_length: int | None = None,
        read_timeout: float = 30.0,
    ) -> StreamedResponse:
        """Retried as `send` is, before any of the response is handed out (a retryable status
        closes that attempt's response), except with a request `body`: an iterator is spent
        by its one attempt."""
        if body is not None:
            return await self.inner.stream(
                request,
                deadline,
                attempt,
                body=body,
                content_length=content_length,
                read_timeout=read_timeout,
            )

        def once(request: Request, deadline: float, attempt: int) -> Awaitable[StreamedResponse]:
            return self.inner.stream(request, deadline, attempt, read_timeout=read_timeout)

        return await self._call(request, deadline, attempt, once)

    async def _call(
        self,
        request: Request,
        deadline: float,
        attempt: int,
        once: Callable[[Request, float, int], Awaitable[Answer]],
    ) -> Answer:
        """The first attempt, counted in the budget's requests; more if it failed."""
        budget = self.budget
        budget.requests += 1
        try:
            try:
                answer = await once(request, deadline, attempt)
            except TransportError as error:
                return await self._again(request, deadline, attempt, error, once)
            if answer.status not in RETRY_STATUSES or not request.idempotent:
                return answer  # `retry_after_status`, inline
            return await self._again(request, deadline, attempt, answer, once)
        finally:
            budget.requests -= 1

    async def _again(
        self,
        request: Request,
        deadline: float,
        attempt: int,
        failure: Answer | TransportError,
        once: Callable[[Request, float, int], Awaitable[Answer]],
    ) -> Answer:
        """After a failed first attempt: more attempts, each on an instance not tried yet,
        while the policy, the deadline and the budget allow; the last failure is the result."""
        budget = self.budget
        retrying = False
        tried: list[Instance] = []
        loop = asyncio.get_running_loop()
        try:
            while True:
                instance = getattr(failure, "instance", None)
                if instance is not None:
                    tried.append(instance)
                if not self._may_retry(request, failure, attempt) or loop.time() >= deadline:
                    break
                if not retrying:
                    retrying = budget.try_acquire()
                    if not retrying:
                        break
                if isinstance(failure, StreamedResponse):
                    await failure.aclose()  # given up on: its connection is closed or reused
                attempt += 1
                token = AVOID.set(tuple(tried))
                try:
                    answer = await once(request, deadline, attempt)
                except TransportError as error:
                    failure = error
                else:
                    if not retry_after_status(request, answer.status):
                        return answer
                    failure = answer
                finally:
                    AVOID.reset(token)
            if isinstance(failure, TransportError):
                raise failure
            return failure
        finally:
            if retrying:
                budget.release()

    def _may_retry(
        self, request: Request, failure: Reply | StreamedResponse | TransportError, attempt: int
    ) -> bool:
        if attempt >= self.attempts:
            return False
        if not isinstance(failure, TransportError):
            return True  # a retryable status, checked by the caller
        return retry_after_error(request, failure)

    async def aclose(self) -> None:
        await self.inner.aclose()
