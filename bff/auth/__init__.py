"""Authentication and authorization: who is calling, what they may do, and the tokens.

principal, policy      the kernel: the caller, and requirements declared on fields/routes
tokens, keyring        the gateway's JWTs: signing, verifying, `kid`s, rotation, JWKS
opaque, refresh        opaque access tokens; rotating refresh tokens in families
revocation             revoked JWT ids and families, checked in memory, read from the store
issuers                external identity providers' JWTs, verified with their JWKS
store, store_*         the token store: `memory`, `redis` or `memcached`, one interface
issuing                log in, refresh, revoke (`TokenService`)
throttle               the login throttle's interface and the client address (`LoginGate`)
authenticator          a bearer token -> a principal, per request
runtime                all of it, built from the config (`AuthRuntime`)
"""

from bff.auth.policy import Authenticated, OwnerOr, Public, Requirement, Scopes
from bff.auth.principal import ANONYMOUS, Principal
from bff.auth.tokens import TokenSigner, TokenVerifier, bearer_token

__all__ = [
    "ANONYMOUS",
    "Authenticated",
    "OwnerOr",
    "Principal",
    "Public",
    "Requirement",
    "Scopes",
    "TokenSigner",
    "TokenVerifier",
    "bearer_token",
]
