"""The request-head rules of RFC 9112 that twisted.web's parser lets through (pure).

twisted.web splits the request line and the header lines and decodes the
body; what it accepts that it should not is refused here, before a request
reaches the application:

- transfer codings (6.1, 6.3): ``Transfer-Encoding: identity`` is ignored by
  Twisted, so its body was parsed as the next request (smuggling);
- ``Host`` (3.2): none on HTTP/1.1, or more than one;
- request-target forms (3.2.1-3.2.4): ``GET abc`` was passed on as the path.

Each rule returns None when the head may go on, or a ``Refusal``: the status
and a sentence for the error page. The connection is closed after every
refusal, since its framing cannot be trusted. ``docs/http.md`` ("Request
parsing") lists the same rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple


class Refusal(NamedTuple):
    status: int
    detail: str


#: A request with both framing headers (6.3, point 3): a smuggling attempt, or a broken client.
BOTH_LENGTHS = Refusal(400, "A request must not have both Transfer-Encoding and Content-Length.")
#: CONNECT asks for a tunnel (RFC 9110 9.3.6); Telex is not a proxy.
NO_CONNECT = Refusal(501, "CONNECT is not implemented: this server is not a proxy.")

_ABSOLUTE_PREFIXES = (b"http://", b"https://")


def transfer_coding_refusal(value: bytes, version: bytes, chunked_before: bool) -> Refusal | None:
    """One ``Transfer-Encoding`` field line. Only ``chunked``, alone, is implemented.

    ``chunked_before``: an earlier line of the same request said ``chunked``
    (lines of one field are one list, RFC 9110 5.3).
    """
    if version != b"HTTP/1.1":
        # 6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing.
        return Refusal(400, "Transfer-Encoding is not allowed in an HTTP/1.0 request.")
    codings = [b"chunked"] if chunked_before else []
    codings += [coding.strip(b" \t").lower() for coding in value.split(b",")]
    codings = [coding for coding in codings if coding]  # empty list elements (RFC 9110 5.6.1)
    if not codings:
        return Refusal(400, "The Transfer-Encoding header is empty.")
    if b"chunked" in codings[:-1]:
        # 6.3: the body's end cannot be found unless chunked comes last, once.
        return Refusal(400, "The chunked transfer coding must be the last one, and appear once.")
    if codings != [b"chunked"]:
        # 6.1: a transfer coding the server does not understand is a 501.
        return Refusal(501, "Only the chunked transfer coding is implemented.")
    return None


def head_refusal(
    method: bytes, target: bytes, version: bytes, hosts: Sequence[bytes] | None
) -> Refusal | None:
    """The request target's form (3.2) and, on HTTP/1.x, its ``Host`` lines.

    ``method`` as the application will see it (upper case); ``hosts`` the
    values of the ``Host`` header lines, None when there is none. HTTP/2
    (``version`` ``b"HTTP/2"``) has no absolute-form, and the h2 library
    checks ``:authority`` against ``Host`` itself.
    """
    http1 = version != b"HTTP/2"
    if http1 and hosts is None and version == b"HTTP/1.1":
        return Refusal(400, "An HTTP/1.1 request must have a Host header.")
    if http1 and hosts is not None and len(hosts) > 1:
        return Refusal(400, "A request must not have more than one Host header.")
    if method == b"CONNECT":
        # Over HTTP/2 h2 has checked its form: :authority, no :path (RFC 9113 8.5).
        if not http1 or _is_authority_form(target):
            return NO_CONNECT
        return Refusal(400, "The target of CONNECT must be a host and a port.")
    if target[:1] == b"/":  # origin-form, by far the usual
        return None
    if target == b"*":
        if method == b"OPTIONS":
            return None
        return Refusal(400, "The target * is for OPTIONS requests only.")
    if http1 and target[:8].lower().startswith(_ABSOLUTE_PREFIXES):
        authority = absolute_form_authority(target)
        if not authority or b"@" in authority:
            # RFC 9110 4.2.1 and 4.2.4: an http URI has a host, and no userinfo.
            return Refusal(400, "The target URL must name a host, without user information.")
        return None
    return Refusal(400, "The request target must be a path starting with /.")


def absolute_form_authority(target: bytes) -> bytes | None:
    """The authority of an absolute-form target (``http://host:port/path``), else None.

    It is the request's host: a server must ignore ``Host`` then (3.2.2).
    """
    if not target[:8].lower().startswith(_ABSOLUTE_PREFIXES):
        return None
    rest = target[target.index(b"//") + 2 :]
    end = len(rest)
    for delimiter in (b"/", b"?", b"#"):
        found = rest.find(delimiter)
        if 0 <= found < end:
            end = found
    return rest[:end]


def _is_authority_form(target: bytes) -> bool:
    """``host:port`` (3.2.3), the port made of digits."""
    host, colon, port = target.rpartition(b":")
    return bool(host and colon and port.isdigit()) and b"/" not in host and b"@" not in host
