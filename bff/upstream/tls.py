"""`TlsClient`: how the connections of one upstream speak TLS, built once at start-up.

Every connection to an `https://` instance (calls, streamed passthrough, health probes) takes
its context from here, so one upstream's CA, client certificate and server name apply to all
of them alike. Verification is never relaxed on the fly: a certificate that does not verify
fails the connection (`TlsFailed`), and only `tls.verify: false` turns checking off, with a
warning at start-up naming the upstream.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from functools import cache
from urllib.parse import urlsplit

from bff.config import ConfigError, UpstreamConfig
from bff.config.tls import TlsFileError, client_context

log = logging.getLogger("bff.upstream")

ALPN = ["http/1.1"]  # the only protocol the client speaks; a server offering h2 must not pick it


@dataclass(frozen=True, slots=True)
class TlsClient:
    """The context of an upstream's connections, the name its certificates must carry
    (`None`: each instance URL's host), and whether it presents a client certificate."""

    context: ssl.SSLContext
    server_name: str | None = None
    client_certificate: bool = False


@cache
def system_tls() -> TlsClient:
    """The system's trusted CAs, full checks: for `https://` instances with no `tls` section."""
    context = client_context()
    context.set_alpn_protocols(ALPN)
    return TlsClient(context)


def tls_for(name: str, upstream: UpstreamConfig) -> TlsClient | None:
    """The TLS client of upstream `name`; None when it has no `https://` instance."""
    config = upstream.tls
    if config is None:
        https = any(urlsplit(i.url).scheme == "https" for i in upstream.instances)
        return system_tls() if https else None
    try:
        context = config.context()
    except TlsFileError as exc:  # the file changed since the config was validated
        where = f"upstreams.{name}.tls.{exc.key}"
        raise ConfigError([f"{where}: {exc.reason} (got {str(exc.path)!r})"]) from None
    context.set_alpn_protocols(ALPN)
    if not config.verify:
        log.warning(
            "upstream %s: tls.verify is false, so the certificates of its instances are not "
            "checked: anyone on the network path can read and change its traffic",
            name,
        )
    return TlsClient(context, config.server_name, config.cert_file is not None)
