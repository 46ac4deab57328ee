"""Who a request counts against: token subject, else a known API key, else the client IP.

The IP is the TCP peer's, unless the peer is one of `server.trusted_proxies`: then the
`X-Forwarded-For` list is read from the right, skipping trusted proxies, and the first address
that is not one is the client (the leftmost entries are whatever the client chose to send).
An API key identifies a client only when it is one of `rate_limits.api_keys`: a made-up key
must not buy a fresh budget. Keys are looked up by their SHA-256, so the key never appears in
ids, logs or timing-sensitive comparisons.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping

from pydantic import SecretStr
from starlette.types import Scope

from bff.auth import Principal

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


class ClientIdentifier:
    def __init__(
        self,
        trusted_proxies: Iterable[str] = (),
        api_key_header: str = "X-API-Key",
        api_keys: Mapping[str, SecretStr] | None = None,
    ) -> None:
        self.proxies: tuple[Network, ...] = tuple(
            ipaddress.ip_network(p, strict=False) for p in trusted_proxies
        )
        self.key_header = api_key_header.lower().encode("latin-1")
        self.keys = {_digest(k.get_secret_value()): name for name, k in (api_keys or {}).items()}

    def identify(self, scope: Scope, principal: Principal) -> str:
        """`user:<sub>`, `key:<name>` or `ip:<address>`."""
        if principal.sub is not None:
            return "user:" + principal.sub
        if self.keys:
            for name, value in scope["headers"]:
                if name == self.key_header:
                    known = self.keys.get(_digest(value.decode("latin-1")))
                    if known is not None:
                        return "key:" + known
                    break
        return "ip:" + self.client_ip(scope)

    def client_ip(self, scope: Scope) -> str:
        peer = scope.get("client")
        address = peer[0] if peer else "unknown"
        if not self.proxies or not self.trusted(address):
            return address
        forwarded = [v.decode("latin-1") for n, v in scope["headers"] if n == b"x-forwarded-for"]
        hops = [h.strip() for line in forwarded for h in line.split(",") if h.strip()]
        for hop in reversed(hops):
            if not self.trusted(hop):
                return hop if _is_ip(hop) else address
            address = hop
        return address

    def trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.proxies)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
