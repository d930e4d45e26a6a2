"""TLS listeners: certificates from files, ALPN (h2, http/1.1), reload on SIGHUP.

A listener's TLS connections are made from :class:`ReloadableContextFactory`,
whose ``getContext`` returns the *current* ``OpenSSL.SSL.Context``; Twisted
asks for it once per new connection. Reloading builds a complete new context
first and swaps it in only if that worked, so a bad certificate never replaces
a good one, and open connections keep the context they were made with.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from OpenSSL import SSL, crypto
from twisted.internet import reactor, threads
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IOpenSSLContextFactory
from twisted.internet.ssl import AcceptableCiphers, CertificateOptions, TLSVersion
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from zope.interface import implementer

logger = logging.getLogger("telex.tls")

#: ALPN protocols offered, in order of preference.
ALPN_PROTOCOLS = [b"h2", b"http/1.1"]

#: TLS 1.2 cipher suites: forward-secret key exchange with AEAD only (Mozilla's
#: "intermediate" profile; also what HTTP/2 requires, RFC 9113 9.2.2). Twisted's
#: default also admits CBC and static-RSA suites. TLS 1.3 suites are OpenSSL's
#: (all AEAD).
CIPHERS = AcceptableCiphers.fromOpenSSLCipherString(
    "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!MD5:!DSS"
)


class TLSConfigError(ValueError):
    """A certificate, key or CA file cannot be used; the message says which and why."""


@dataclass(frozen=True)
class CertificateFiles:
    """Where one listener's TLS material lives (all PEM)."""

    #: The server certificate, optionally followed by its intermediate chain.
    certfile: str
    #: The private key; None: it is in ``certfile`` too.
    keyfile: str | None = None
    #: Password of an encrypted private key.
    password: str | None = None
    #: CA certificates; when given, clients must present a certificate they signed.
    ca_certs: str | None = None


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise TLSConfigError(f"cannot read {what} {path}: {exc.strerror}") from None


def _certificates(path: str, what: str) -> list[crypto.X509]:
    from cryptography import x509

    try:
        found = x509.load_pem_x509_certificates(_read(path, what))
    except ValueError as exc:
        raise TLSConfigError(f"{what} {path} holds no usable PEM certificate: {exc}") from None
    return [crypto.X509.from_cryptography(certificate) for certificate in found]


def _private_key(path: str, password: str | None) -> crypto.PKey:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(_read(path, "private key"), password.encode() if password else None)
    except TypeError as exc:  # encrypted but no password, or a password for a clear key
        raise TLSConfigError(f"private key {path}: {exc}") from None
    except ValueError as exc:  # not PEM, or a wrong password
        raise TLSConfigError(f"private key {path} cannot be loaded (wrong password?): {exc}") from None
    return crypto.PKey.from_cryptography_key(key)  # type: ignore[arg-type]


def build_context(files: CertificateFiles) -> SSL.Context:
    """A complete server context from ``files``, or :class:`TLSConfigError`."""
    chain = _certificates(files.certfile, "certificate file")
    key = _private_key(files.keyfile or files.certfile, files.password)
    options: dict[str, Any] = {}
    if files.ca_certs:
        options.update(verify=True, requireCertificate=True, caCerts=_certificates(files.ca_certs, "CA file"))
    try:
        return CertificateOptions(
            privateKey=key,
            certificate=chain[0],
            extraCertChain=chain[1:],
            raiseMinimumTo=TLSVersion.TLSv1_2,
            acceptableCiphers=CIPHERS,
            acceptableProtocols=ALPN_PROTOCOLS,
            **options,
        ).getContext()
    except SSL.Error as exc:
        # The usual cause: the key does not belong to the certificate.
        raise TLSConfigError(f"{files.certfile} with {files.keyfile or files.certfile}: {exc}") from None


@implementer(IOpenSSLContextFactory)
class ReloadableContextFactory:
    """Hands every new connection the current context; ``reload`` replaces it."""

    def __init__(self, files: CertificateFiles) -> None:
        self.files = files
        self._context = build_context(files)

    def getContext(self) -> SSL.Context:
        return self._context

    def reload(self) -> Deferred:
        """Re-read the files; keep the old context (and log why) if they are unusable.

        Built in a thread: loading an RSA key checks it, about 60 ms for
        2048 bits (measured), which the reactor should not wait for.
        """
        building = threads.deferToThread(build_context, self.files)
        building.addCallbacks(self._swap, self._keep)
        return building

    def _swap(self, context: SSL.Context) -> None:
        self._context = context
        logger.info("TLS certificate reloaded from %s", self.files.certfile)

    def _keep(self, failure: Failure) -> None:
        error = failure.value
        reason = str(error) if isinstance(error, TLSConfigError) else f"{type(error).__name__}: {error}"
        logger.error("TLS reload failed, keeping the previous certificate: %s", reason)


class TLSListeners:
    """Every TLS listener of the server, so that SIGHUP reloads them all."""

    def __init__(self) -> None:
        self.factories: list[ReloadableContextFactory] = []

    def listen(self, endpoint: Any, files: CertificateFiles, factory: Any) -> Deferred:
        """Listen on a plain stream endpoint (``tcp:...``, ``unix:...``, or an
        endpoint object) with TLS."""
        contexts = ReloadableContextFactory(files)
        self.factories.append(contexts)
        if isinstance(endpoint, str):
            endpoint = serverFromString(reactor, endpoint)
        # The factory provides IOpenSSLServerConnectionCreator through zope @implementer.
        return endpoint.listen(TLSMemoryBIOFactory(contexts, False, factory))  # type: ignore[arg-type]

    def reload(self) -> None:
        if not self.factories:
            logger.info("SIGHUP: no TLS listeners, nothing to reload")
        for contexts in self.factories:
            contexts.reload()


def is_tls_port(port: Any) -> bool:
    """Whether a listening port serves TLS (for the start-up log line)."""
    return isinstance(getattr(port, "factory", None), TLSMemoryBIOFactory)
