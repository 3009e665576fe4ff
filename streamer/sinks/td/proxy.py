"""The forward proxy a TD request goes through, from the environment variables every
HTTP client reads (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`, lower case first), as
botocore does for the S3 stage and the AWS loaders: a host that reaches the internet
only through a proxy reaches TD the same way.

An https origin is reached through a `CONNECT` tunnel (TLS end to end, the proxy
sees only the host name); an http origin by sending the proxy each request with its
absolute URL (http_client.py does both).  Only `http://` proxies; `user:password@`
in the proxy URL becomes a `Proxy-Authorization: Basic` header (a secret: masked
like the write key).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True, slots=True)
class Proxy:
    host: str
    port: int
    # "Basic ..." from the URL's user:password; never in a repr, log or message
    authorization: str | None = field(default=None, repr=False)
    password: str = field(default="", repr=False)

    def __str__(self) -> str:
        return f"http://{self.host}:{self.port}"

    def header_lines(self) -> str:
        return (f"Proxy-Authorization: {self.authorization}\r\n"
                if self.authorization else "")

    def secrets(self) -> tuple[str, ...]:
        """What a SecretMasker must hide: the header's token and the password."""
        return tuple(s for s in (self.password, (self.authorization or "")[6:]) if s)


def proxy_for(scheme: str, host: str) -> Proxy | None:
    """The proxy for `scheme://host` from the environment (None: connect directly).
    Raises ValueError for a proxy URL streamer cannot use; the message names the
    variable, not its value (which may hold a password)."""
    import urllib.request  # http.client and email with it: a run without a td sink has no use

    proxies = urllib.request.getproxies_environment()
    url = proxies.get(scheme)
    if not url or urllib.request.proxy_bypass_environment(host, proxies):
        return None
    parsed = urlsplit(url if "://" in url else f"http://{url}")
    variable = f"{scheme}_proxy"
    if parsed.scheme != "http":
        raise ValueError(f"{variable}: only http:// proxies are supported")
    try:
        port = parsed.port or 80
    except ValueError:
        raise ValueError(f"{variable}: not a valid port") from None
    if not parsed.hostname:
        raise ValueError(f"{variable}: no host")
    if parsed.username is None:
        return Proxy(parsed.hostname, port)
    user, password = unquote(parsed.username), unquote(parsed.password or "")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return Proxy(parsed.hostname, port, f"Basic {token}", password)
