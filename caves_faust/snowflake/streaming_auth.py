"""Who the streaming client is: the ingest host and the scoped token it is given for a key-pair JWT.

A real account is reached at `<account>.snowflakecomputing.com`: the client signs a JWT with the user's private key
(RS256, issuer `<ACCOUNT>.<USER>.SHA256:<public key fingerprint>`), asks that host for the account's ingest host,
then exchanges the JWT for a token scoped to that host, the only one the streaming endpoints accept. The host is
used as Snowflake's own clients use it: an account name's `_` is a `-` in a host name, in lower case. Every request
names the client in a User-Agent, in the form the REST API's reference recommends. The embedded Snowflake serves the
same two endpoints and accepts any token. Tokens never appear in logs or errors.
"""

from __future__ import annotations

import base64
import hashlib
import json
import platform
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import aiohttp
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from caves_faust.settings import Settings

JWT_LIFETIME_SECONDS = 3540  # Snowflake accepts at most one hour
TOKEN_REFRESH_SECONDS = 3000  # renew the JWT and the scoped token before either can expire
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
EMBEDDED_JWT = "embedded"  # the embedded Snowflake accepts any bearer token
USER_AGENT = (f"caves_faust/{version('caves_faust')} ({platform.system()} {platform.machine()}) "
              f"PYTHON/{platform.python_version()} (app=caves_faust)")


class AuthError(Exception):
    """The account refused the credentials (HTTP 401/403): not an outage, the settings need fixing."""


@dataclass(frozen=True)
class KeyPair:
    """A user's private key and the JWT identity Snowflake derives from its public half."""

    account: str
    user: str
    private_key: PrivateKeyTypes

    @classmethod
    def from_settings(cls, settings: Settings) -> "KeyPair":
        passphrase = str(settings.snowflake_private_key_passphrase).encode() or None
        key = serialization.load_pem_private_key(Path(settings.snowflake_private_key_file).read_bytes(), passphrase)
        # The account part of the identifier, without a region or cloud suffix, upper-cased (Snowflake's rule).
        return cls(settings.snowflake_account.split(".")[0].upper(), settings.snowflake_user.upper(), key)

    def fingerprint(self) -> str:
        public = self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return "SHA256:" + base64.b64encode(hashlib.sha256(public).digest()).decode()

    def jwt(self, now: float) -> str:
        subject = f"{self.account}.{self.user}"
        claims = {"iss": f"{subject}.{self.fingerprint()}", "sub": subject, "iat": int(now),
                  "exp": int(now) + JWT_LIFETIME_SECONDS}
        return jwt.encode(claims, self.private_key, algorithm="RS256")  # type: ignore[arg-type]


@dataclass
class Credentials:
    """The ingest host's base URL and a scoped token for it, renewed every TOKEN_REFRESH_SECONDS."""

    control_url: str  # https://<account>.snowflakecomputing.com, or the embedded Snowflake's http://host:port
    protocol: str
    key_pair: KeyPair | None  # None: the embedded Snowflake
    ingest_url: str = ""
    token: str = ""
    renewed_at: float = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> "Credentials":
        if settings.embedded_snowflake:
            url = f"{settings.snowflake_protocol}://{settings.snowflake_host}:{settings.snowflake_port}"
            return cls(url, settings.snowflake_protocol, None)
        # Host names take hyphens where account identifiers have underscores.
        host = f"{settings.snowflake_account.replace('_', '-').lower()}.snowflakecomputing.com"
        return cls(f"https://{host}", "https", KeyPair.from_settings(settings))

    def stale(self) -> bool:
        return not self.token or time.monotonic() - self.renewed_at > TOKEN_REFRESH_SECONDS

    async def renew(self, session: aiohttp.ClientSession) -> None:
        """Discover the ingest host and exchange a fresh JWT for a token scoped to it."""
        assertion = self.key_pair.jwt(time.time()) if self.key_pair else EMBEDDED_JWT
        headers = {"Authorization": f"Bearer {assertion}", "X-Snowflake-Authorization-Token-Type": "KEYPAIR_JWT",
                   "User-Agent": USER_AGENT}
        async with session.get(f"{self.control_url}/v2/streaming/hostname", headers=headers) as response:
            hostname = ingest_host(_field(await _ok_text(response, "hostname discovery"), "hostname"))
        form = {"grant_type": JWT_GRANT, "scope": hostname}
        async with session.post(f"{self.control_url}/oauth/token", data=form, headers=headers) as response:
            self.token = _field(await _ok_text(response, "scoped-token exchange"), "token")
        self.ingest_url = f"{self.protocol}://{hostname}"
        self.renewed_at = time.monotonic()


def ingest_host(hostname: str) -> str:
    """The ingest host as Snowflake's own clients use it for the scoped token and every call: an account name's
    underscores are hyphens in a host name (`_` is no host name character), in lower case."""
    return hostname.strip().replace("_", "-").lower()


async def _ok_text(response: aiohttp.ClientResponse, what: str) -> str:
    text = await response.text()
    if response.status in (401, 403):
        raise AuthError(f"{what} refused: HTTP {response.status}")
    response.raise_for_status()
    return text


def _field(text: str, name: str) -> str:
    """The documentation shows a JSON object (`{"hostname": ...}`, `{"token": ...}`); its tutorial reads the
    body as the bare value: accept both."""
    try:
        value = json.loads(text)
    except ValueError:
        return text.strip()
    return str(value[name]) if isinstance(value, dict) else str(value).strip()
