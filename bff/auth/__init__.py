"""Authentication and authorization kernel: principal, requirements, token verification."""

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
