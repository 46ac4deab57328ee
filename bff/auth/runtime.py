"""Everything authentication needs at run time, built once from the config.

`AuthRuntime.from_settings` chooses the token store (`auth.store`), the keys (`auth.jwt` and
its `next`), the access token format and the trusted issuers, and wires them together. The
HTTP layer injects how to fetch a JWKS (`fetch`), so this package never imports an HTTP client;
the app injects its shared state, whose Redis client the `redis` token store uses, and the
login throttle (`throttle`, built over the rate-limit store).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bff.auth.authenticator import Authenticator
from bff.auth.issuers import Fetch, Issuer, TrustedIssuers
from bff.auth.issuing import TokenService
from bff.auth.keyring import Keyring
from bff.auth.opaque import OpaqueTokens
from bff.auth.refresh import RefreshTokens
from bff.auth.revocation import Revocations
from bff.auth.store import TokenStore
from bff.auth.store_memcached import MemcachedTokenStore
from bff.auth.store_memory import MemoryTokenStore
from bff.auth.store_redis import RedisTokenStore
from bff.auth.throttle import LoginGate
from bff.auth.tokens import TokenSigner, TokenVerifier
from bff.config import Settings
from bff.shared_state import SharedState

log = logging.getLogger("bff")


def token_store(settings: Settings, shared: SharedState) -> TokenStore:
    """The store `auth.store` names, in its namespace of the shared prefix (`bff:auth:`;
    memcached's own `memcached.key_prefix` when it has one)."""
    if settings.auth.store == "redis":
        assert shared.redis is not None  # `auth.store: redis` makes Redis configured
        return RedisTokenStore(shared.redis, shared.namespace("auth"))
    if settings.auth.store == "memcached":
        memcached = settings.memcached
        prefix = memcached.key_prefix if memcached.key_prefix is not None else shared.prefix
        return MemcachedTokenStore(memcached.servers, prefix + "auth:")
    return MemoryTokenStore()


@dataclass(frozen=True, slots=True)
class AuthRuntime:
    store: TokenStore
    keyring: Keyring
    revocations: Revocations
    service: TokenService
    authenticator: Authenticator
    checks_store_for_readiness: bool

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        fetch: Fetch,
        shared: SharedState,
        throttle: LoginGate | None = None,
    ) -> AuthRuntime:
        auth = settings.auth
        store = token_store(settings, shared)
        keyring = Keyring.from_config(auth.jwt)
        verifier = signer = None
        if keyring.verifying:
            main = keyring.verifying[0]
            others = {k.kid: (k.algorithm, k.verification_key) for k in keyring.verifying}
            verifier = TokenVerifier(
                main.algorithm, main.verification_key, auth.issuer, auth.audience, by_kid=others
            )
        elif not auth.trusted_issuers:
            log.warning("auth.jwt has no key: every bearer JWT will be refused")
        if keyring.signing is not None:
            key = keyring.signing
            assert key.signing_key is not None
            signer = TokenSigner(
                key.algorithm, key.signing_key, auth.issuer, auth.audience, kid=key.kid
            )
        revocations = Revocations(store)
        opaque = OpaqueTokens(store, auth.issuer)
        trusted = None
        if auth.trusted_issuers:
            issuers = [Issuer(t.issuer, t.jwks_url, t.audience) for t in auth.trusted_issuers]
            trusted = TrustedIssuers(issuers, fetch)
        service = TokenService(
            token_format=auth.token_format,
            signer=signer,
            verifier=verifier,
            opaque=opaque,
            refresh=RefreshTokens(store, auth.refresh_ttl),
            revocations=revocations,
            access_ttl=auth.access_ttl,
            throttle=throttle,
        )
        authenticator = Authenticator(
            issuer=auth.issuer,
            verifier=verifier,
            revocations=revocations,
            opaque=opaque,
            trusted=trusted,
        )
        return cls(
            store,
            keyring,
            revocations,
            service,
            authenticator,
            checks_store_for_readiness=auth.store != "memory" and auth.token_format == "opaque",
        )

    async def store_ready(self) -> bool:
        """For `/readyz`: the store answers, or the gateway does not need it to serve."""
        return not self.checks_store_for_readiness or await self.store.ping()

    async def aclose(self) -> None:
        await self.revocations.aclose()
        await self.store.aclose()
