"""Config of the limits that protect the upstreams (SPEC sections 7 and 10).

`limits` bounds what one GraphQL document may ask for, `rate_limits` how often a client may ask,
and `persisted_queries` which documents may be asked at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator

from bff.config.base import Section
from bff.config.units import ByteSize, Duration


class LimitsConfig(Section):
    enabled: bool = Field(True, description="Check depth, aliases and cost at all.")
    max_depth: int = Field(
        10, ge=1, description="Deepest selection nesting, fragments expanded (root field = 1)."
    )
    max_cost: int = Field(
        5000,
        ge=1,
        description="Highest computed cost: every field costs 1, a field with a `first` "
        "argument multiplies what is below it by `first` (or its default), and a list field "
        "taking a list argument (`users(ids: [...])`) by the length of that list.",
    )
    max_aliases: int = Field(30, ge=0, description="Most aliases in one operation.")
    max_tokens: int = Field(
        1000,
        ge=100,
        description="Most lexical tokens in one document; parsing stops there (a document "
        "at the cap costs a few milliseconds of CPU to parse, so no more than that).",
    )
    max_fields: int = Field(
        1000,
        ge=1,
        description="Most field selections in one document, counted after merging repeated "
        "selections and expanding fragments, parents included; checked before validation "
        "(`QUERY_TOO_COMPLEX`), whether or not `enabled`.",
    )
    max_variables: ByteSize = Field(
        64_000, ge=2, description="Largest `variables` object, measured as JSON."
    )
    default_list_size: int = Field(
        10,
        ge=1,
        description="Multiplier of a generated (OpenAPI source) list field without a `first` "
        "or `limit` argument, in the cost.",
    )


class RateLimitRule(Section):
    requests: int = Field(600, ge=1, description="Requests allowed per window.")
    per: Duration = Field(60.0, gt=0, description="Length of the window.")


class UsernameBudget(RateLimitRule):
    requests: int = Field(10, ge=1, description="Attempts allowed per window.")


class AddressBudget(RateLimitRule):
    requests: int = Field(30, ge=1, description="Attempts allowed per window.")


class LoginRateLimits(Section):
    """Login throttling (SPEC section 15): password guessing is slow from one address and
    against one account, whoever asks and through which door."""

    enabled: bool = Field(
        True,
        description="Throttle `/auth/token`, `/auth/refresh` and the `login` and "
        "`refreshToken` mutations (off as well when `rate_limits.enabled` is false).",
    )
    per_username: UsernameBudget = Field(
        default_factory=UsernameBudget,
        description="Attempts per username (a refresh counts against its token's family), "
        "from any address. A correct password over the limit is refused too.",
    )
    per_address: AddressBudget = Field(
        default_factory=AddressBudget,
        description="Attempts per client address (see `server.trusted_proxies`), logins "
        "and refreshes together.",
    )


class RateLimitsConfig(Section):
    enabled: bool = Field(True, description="Apply the rate limits at all.")
    default: RateLimitRule = Field(
        default_factory=RateLimitRule, description="Budget of each client."
    )
    clients: dict[str, RateLimitRule] = Field(
        default_factory=dict,
        description="Budgets of particular clients, by client id as the access log shows it: "
        "`user:<sub>`, `key:<name>`, `ip:<address>`. Wins over `scopes`.",
    )
    scopes: dict[str, RateLimitRule] = Field(
        default_factory=dict,
        description="Budgets of callers holding a scope; with several, the most generous wins.",
    )
    api_key_header: str = Field(
        "X-API-Key", description="Request header carrying an API key (see `api_keys`)."
    )
    api_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Known API keys by name: a request without a token presenting one is "
        "client `key:<name>`. Unknown keys are ignored (the client is then its IP), so nobody "
        "gets a fresh budget by inventing keys.",
    )
    on_store_error: Literal["allow", "deny"] = Field(
        "allow",
        description="When Redis cannot be reached: `allow` lets requests through (one "
        "warning), `deny` refuses them with 503.",
    )
    login: LoginRateLimits = Field(
        default_factory=LoginRateLimits,
        description="Login throttling, per address and per username, on by default.",
    )


class PersistedQueriesConfig(Section):
    apq: bool = Field(True, description="Accept automatic persisted queries (Apollo protocol).")
    only_persisted: bool = Field(
        False,
        description="Refuse ad-hoc queries; only hashes from `bff persist` or the manifest run.",
    )
    manifest: Path | None = Field(
        None,
        description="JSON file mapping sha256 hashes to documents, loaded at start-up. "
        "Relative paths are relative to the config file.",
    )
    apq_ttl: Duration = Field(
        7 * 86400.0, gt=0, description="How long an APQ registration is kept in Redis."
    )

    @field_validator("manifest")
    @classmethod
    def _relative_to_config(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        base = (info.context or {}).get("base_dir")
        if value is not None and base is not None and not value.is_absolute():
            return Path(base) / value
        return value
