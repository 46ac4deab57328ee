"""TLS files of the config (`upstreams.*.tls`, `telemetry.tls`) and the client context from them.

The files are read while the config is validated, so a missing, unreadable or malformed CA,
certificate or key stops the gateway at start-up with the key that names it, not at the first
call. The same function builds the `ssl.SSLContext` the clients use, once per upstream (and
once for the collector): verification is on unless `verify: false` says otherwise. Messages
name what is wrong with a file, never its contents.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization


class TlsFileError(ValueError):
    """A TLS file is unusable; `key` is the config key that names it (`ca_file`, ...)."""

    def __init__(self, key: str, reason: str, path: Path) -> None:
        super().__init__(reason)
        self.key = key
        self.reason = reason
        self.path = path


def _read(key: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise TlsFileError(key, "file not found", path) from None
    except IsADirectoryError:
        raise TlsFileError(key, "is a directory, not a PEM file", path) from None
    except OSError as exc:
        reason = f"cannot read file ({exc.strerror or type(exc).__name__})"
        raise TlsFileError(key, reason, path) from None


def _check_certificates(key: str, path: Path, data: bytes) -> None:
    try:
        x509.load_pem_x509_certificates(data)
    except ValueError:
        raise TlsFileError(key, "not a PEM certificate", path) from None


def _check_private_key(key: str, path: Path, data: bytes) -> None:
    try:
        serialization.load_pem_private_key(data, password=None)
    except TypeError:
        reason = "encrypted private keys are not supported; store it unencrypted"
        raise TlsFileError(key, reason, path) from None
    except ValueError:
        raise TlsFileError(key, "not a PEM private key", path) from None


def client_context(
    ca_file: Path | None = None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
    *,
    verify: bool = True,
) -> ssl.SSLContext:
    """A client context: the system's CAs (or only `ca_file`'s), a client certificate for
    mTLS when `cert_file` is given (its key in `key_file`, or in the same file), and
    certificate and host name checks unless `verify` is false. Raises `TlsFileError`."""
    if ca_file is not None:
        _check_certificates("ca_file", ca_file, _read("ca_file", ca_file))
    cafile = str(ca_file) if ca_file is not None else None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    if cert_file is not None:
        cert = _read("cert_file", cert_file)
        _check_certificates("cert_file", cert_file, cert)
        key_path = key_file or cert_file
        key_name = "key_file" if key_file is not None else "cert_file"
        _check_private_key(key_name, key_path, _read(key_name, key_path))
        try:
            context.load_cert_chain(str(cert_file), str(key_path))
        except ssl.SSLError:
            reason = "does not match cert_file; use the key the certificate was issued for"
            raise TlsFileError(key_name, reason, key_path) from None
    elif key_file is not None:
        raise TlsFileError("key_file", "needs cert_file; set the client certificate", key_file)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def resolve(value: Path | None, base_dir: object) -> Path | None:
    """`value` relative to the config file's directory (`base_dir`), when it is relative."""
    if value is not None and base_dir is not None and not value.is_absolute():
        return Path(str(base_dir)) / value
    return value
