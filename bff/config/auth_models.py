"""The `auth` section: token format, token store, the gateway's signing key, external issuers.

Key files are opened while validating, so a missing, unreadable or wrong kind of key stops the
gateway at start-up with the key's path in the message, not at the first login.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from bff.config import keys
from bff.config.base import HttpUrl, NonBlank, Problem, Section, problems_error
from bff.config.units import Duration

# RFC 7518 section 3.2: an HS256 key must be at least as long as the hash output (256 bits).
MIN_HS256_SECRET_BYTES = 32


def _hs256_secret_problem(secret: SecretStr | None) -> str | None:
    """What is wrong with an HS256 secret, never quoting it; None when it will do."""
    if secret is None:
        return None
    size = len(secret.get_secret_value().encode("utf-8"))
    if size == 0:
        return "must not be empty"
    if size < MIN_HS256_SECRET_BYTES:
        unit = "byte" if size == 1 else "bytes"
        return (
            f"too short ({size} {unit}); HS256 needs at least {MIN_HS256_SECRET_BYTES} bytes "
            "(RFC 7518), e.g. the output of "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )
    return None


class JwtKeyConfig(Section):
    """One signing key of the gateway: an HS256 secret, or an RS256/ES256 key pair."""

    algorithm: Literal["HS256", "RS256", "ES256"] = Field(
        "HS256",
        description="Signature algorithm of the gateway's own tokens. HS256 uses `secret`; "
        "RS256 and ES256 use key files and publish the public key at /.well-known/jwks.json.",
    )
    secret: SecretStr | None = Field(
        None,
        description="Shared secret for HS256, at least 32 bytes. Required when the `jwt` section "
        "is written with HS256; prefer the BFF_AUTH__JWT__SECRET environment variable to keep "
        "it out of files.",
    )
    private_key_file: Path | None = Field(
        None,
        description="PEM private key for RS256 (RSA) or ES256 (EC P-256), unencrypted. "
        "Needed to issue tokens. Relative paths are relative to the config file.",
    )
    public_key_file: Path | None = Field(
        None,
        description="PEM public key for RS256/ES256. Optional when `private_key_file` is set "
        "(it is derived); alone, the gateway can verify tokens but not issue them.",
    )

    @field_validator("private_key_file", "public_key_file")
    @classmethod
    def _relative_to_config(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        base = (info.context or {}).get("base_dir")
        if value is not None and base is not None and not value.is_absolute():
            return Path(base) / value
        return value

    @model_validator(mode="after")
    def _keys_fit_algorithm(self) -> JwtKeyConfig:
        problems: list[Problem] = []
        if self.algorithm == "HS256":
            problem = _hs256_secret_problem(self.secret)
            if problem is not None:
                problems.append(Problem(("secret",), problem))
            for name in ("private_key_file", "public_key_file"):
                if getattr(self, name) is not None:
                    problems.append(
                        Problem(
                            (name,),
                            "only used with RS256 or ES256; remove it or change auth.jwt.algorithm",
                        )
                    )
        else:
            problems.extend(self._check_key_files())
        if problems:
            raise problems_error(problems)
        return self

    def _check_key_files(self) -> list[Problem]:
        problems: list[Problem] = []
        if self.secret is not None:
            problems.append(Problem(("secret",), f"only used with HS256, not {self.algorithm}"))
        if self.private_key_file is None and self.public_key_file is None:
            problems.append(
                Problem(
                    ("private_key_file",),
                    f"required when algorithm is {self.algorithm}; set private_key_file "
                    "(or public_key_file alone to verify tokens without issuing them)",
                )
            )
            return problems
        private = self._load("private_key_file", keys.load_private_key, problems)
        public = self._load("public_key_file", keys.load_public_key, problems)
        if (
            private is not None
            and public is not None
            and keys.public_pem(private) != keys.public_pem(public)
        ):
            problems.append(
                Problem(
                    ("public_key_file",),
                    "does not match private_key_file; "
                    "remove it to derive the public key from the private one",
                )
            )
        return problems

    def _load(self, name: str, loader: Callable[[Path, str], Any], problems: list[Problem]) -> Any:
        """The key in the file named by field `name`, or None (a problem noted) if unusable."""
        path = getattr(self, name)
        if path is None:
            return None
        try:
            return loader(path, self.algorithm)
        except ValueError as exc:
            problems.append(Problem((name,), str(exc), repr(str(path))))
            return None

    def verification_key(self) -> str | bytes:
        """The key that checks signatures: the HS256 secret, or a public key PEM."""
        if self.algorithm == "HS256":
            if self.secret is None:
                raise ValueError("auth.jwt.secret is not set, so tokens cannot be verified")
            return self.secret.get_secret_value()
        if self.public_key_file is not None:
            return keys.public_pem(keys.load_public_key(self.public_key_file, self.algorithm))
        assert self.private_key_file is not None  # the validator requires one of the two
        return keys.public_pem(keys.load_private_key(self.private_key_file, self.algorithm))

    def signing_key(self) -> str | bytes | None:
        """The key that signs tokens, or None when this gateway can only verify them."""
        if self.algorithm == "HS256":
            return None if self.secret is None else self.secret.get_secret_value()
        if self.private_key_file is None:
            return None
        return keys.private_pem(keys.load_private_key(self.private_key_file, self.algorithm))


class JwtConfig(JwtKeyConfig):
    next: JwtKeyConfig | None = Field(
        None,
        description="The next signing key, for rotation without a flag day: when set, new tokens "
        "are signed with it and tokens of the key above still verify until they expire; both "
        "are published at /.well-known/jwks.json. Once `access_ttl` has passed, make it the "
        "main key and remove `next`.",
    )


class TrustedIssuer(Section):
    issuer: NonBlank = Field(description="The `iss` claim the identity provider puts in tokens.")
    jwks_url: HttpUrl = Field(
        description="Where the provider publishes its signing keys (JWKS); refetched on an "
        "unknown `kid`."
    )
    audience: NonBlank = Field(description="The `aud` claim tokens must carry to be accepted.")


class AuthConfig(Section):
    token_format: Literal["jwt", "opaque"] = Field(
        "jwt",
        description="Access tokens the gateway issues: signed JWTs, or opaque random strings "
        "whose claims live in the token store.",
    )
    store: Literal["memory", "redis", "memcached"] = Field(
        "memory",
        description="Token store for refresh tokens, revocations and opaque tokens: `memory` "
        "for one process, `redis` (see `redis`) or `memcached` (see `memcached`) for several "
        "replicas.",
    )
    issuer: NonBlank = Field("bff", description="`iss` claim of issued tokens.")
    audience: NonBlank = Field(
        "bff", description="`aud` claim of issued tokens, and required on presented ones."
    )
    access_ttl: Duration = Field(900.0, gt=0, description="Lifetime of an access token.")
    refresh_ttl: Duration = Field(
        604800.0, gt=0, description="Lifetime of a refresh token (it rotates on each use)."
    )
    jwt: JwtConfig = Field(
        default_factory=JwtConfig, description="Signing of the gateway's own JWTs."
    )
    trusted_issuers: list[TrustedIssuer] = Field(
        default_factory=list,
        description="External identity providers whose JWTs are accepted as well.",
    )

    @model_validator(mode="after")
    def _cross_checks(self) -> AuthConfig:
        problems: list[Problem] = []
        # Only a written `jwt` section must be complete: defaults alone describe a gateway
        # that has not been given a key yet (the caller decides what that means).
        if (
            "jwt" in self.model_fields_set
            and self.jwt.algorithm == "HS256"
            and (self.jwt.secret is None)
        ):
            problems.append(
                Problem(
                    ("jwt", "secret"),
                    "required when auth.jwt.algorithm is HS256; set it, preferably through "
                    "the BFF_AUTH__JWT__SECRET environment variable",
                )
            )
        nxt = self.jwt.next
        if nxt is not None and nxt.algorithm == "HS256" and nxt.secret is None:
            problems.append(
                Problem(("jwt", "next", "secret"), "required when the next key is HS256")
            )
        seen: dict[str, int] = {}
        for index, trusted in enumerate(self.trusted_issuers):
            if trusted.issuer in seen:
                problems.append(
                    Problem(
                        ("trusted_issuers", index, "issuer"),
                        f"duplicate issuer (also trusted_issuers[{seen[trusted.issuer]}])",
                        repr(trusted.issuer),
                    )
                )
            seen.setdefault(trusted.issuer, index)
        if problems:
            raise problems_error(problems)
        return self
