"""The transport error tree of the upstream client; `UpstreamPool` translates it to `bff.errors`.

TransportError                  request_sent: may any byte have reached the upstream?
├── ConnectFailed               no connection (request_sent False)
│   └── TlsFailed               the TLS handshake failed: a certificate did not verify, or
│                               the upstream refused ours
├── TimedOut                    the time budget ran out (no slot: request_sent False)
│   └── ConnectTimedOut         connecting took too long (request_sent False)
├── ConnectionLost              closed before the response was complete
│   └── StaleConnection         a reused connection closed before any byte of the answer
└── ProtocolViolation           not a well-formed answer to this request
    └── ResponseTooLarge        head, trailers or body over their limits
"""

from __future__ import annotations

import re
import ssl


class TransportError(Exception):
    """The exchange with an upstream failed below HTTP semantics.

    `request_sent` is False only when provably no byte of the request reached the wire (no
    connection, no slot, or the connection was seen closed before writing): such a request may
    be sent again whatever its method.
    """

    request_sent: bool = True

    def __init__(self, message: str = "", *, request_sent: bool | None = None) -> None:
        super().__init__(message)
        if request_sent is not None:
            self.request_sent = request_sent


class ConnectFailed(TransportError):
    """No TCP (or TLS) connection could be opened: refused, unreachable, reset."""

    request_sent = False


class TlsFailed(ConnectFailed):
    """No TLS session: the upstream's certificate did not verify (CA, name, validity), or the
    upstream refused the gateway's (mutual TLS). Never answered by retrying in plain text or
    without verification; the message says why, for the log and the client span."""


_OPENSSL_NOISE = re.compile(r"^\[[A-Z]+: [A-Z0-9_]+\] | \(_ssl\.c:\d+\)$")


def tls_reason(exc: ssl.SSLError) -> str:
    """What went wrong in a TLS handshake, in words: `certificate verify failed: Hostname
    mismatch, ...`, `tlsv13 alert certificate required`, without OpenSSL's source line."""
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"certificate verify failed: {exc.verify_message}"
    text = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
    return _OPENSSL_NOISE.sub("", text) or type(exc).__name__


class TimedOut(TransportError):
    """The call's time budget ran out: waiting for a connection, or for the response."""


class ConnectTimedOut(TimedOut):
    """Opening a connection took longer than the connect timeout."""

    request_sent = False


class ConnectionLost(TransportError):
    """The connection closed before the response was complete.

    `received` says whether any byte of the response had arrived.
    """

    def __init__(self, message: str, *, received: bool, request_sent: bool | None = None) -> None:
        super().__init__(message, request_sent=request_sent)
        self.received = received


class StaleConnection(ConnectionLost):
    """A reused keep-alive connection closed before any byte of the answer: the server most
    likely closed it while idle and never saw the request. Raised by `ConnectionPool.send`
    (one attempt per call) so the layer above decides whether and where to send it again."""

    def __init__(self, message: str, *, request_sent: bool = True) -> None:
        super().__init__(message, received=False, request_sent=request_sent)


class ProtocolViolation(TransportError):
    """The upstream answered something that is not a well-formed HTTP/1.1 response to this
    request (including an answer that belongs to another request, and 1xx/101 misuse)."""


class ResponseTooLarge(ProtocolViolation):
    """The response's head, trailers or body exceed what the gateway accepts."""


class InvalidRequest(ValueError):
    """The request cannot be sent as asked: its method, a header or its path could split it,
    change its framing or leave its route. The caller's fault, never the upstream's
    (`UpstreamPool` answers it as `BadUserInput`)."""
