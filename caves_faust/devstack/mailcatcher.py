"""A local mail catcher: a real SMTP server (aiosmtpd) that accepts every mail and keeps it as an `.eml` file.

`make demo` starts one and points the worker's SMTP_HOST/SMTP_PORT at it; the tests receive the worker's mails on
one. It delivers nothing anywhere: open the files with any mail client, or read them as text.
"""

from __future__ import annotations

import email
import email.policy
import itertools
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class _Keeper:
    """The aiosmtpd handler: each accepted mail to a file of its own, named in the order it came."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.numbers = itertools.count(1)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        name = f"{time.strftime('%Y%m%d-%H%M%S')}-{next(self.numbers):05d}.eml"
        (self.folder / name).write_bytes(envelope.original_content or envelope.content)
        return "250 Message accepted"


class MailCatcher:
    """An SMTP server on host:port keeping mails under `folder`; stop and start it again to play an outage. It takes
    any login (without TLS: it is local) and remembers the user names, never the passwords."""

    def __init__(self, folder: Path, port: int, host: str = "127.0.0.1") -> None:
        self.folder, self.port, self.host = folder, port, host
        self.keeper = _Keeper(folder)
        self.controller: Controller | None = None
        self.logins: list[str] = []

    def _any_login(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            self.logins.append(auth_data.login.decode(errors="replace"))
        return AuthResult(success=True)

    def start(self) -> "MailCatcher":
        self.folder.mkdir(parents=True, exist_ok=True)
        self.controller = Controller(self.keeper, hostname=self.host, port=self.port,
                                     authenticator=self._any_login, auth_require_tls=False)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def mails(self) -> list[EmailMessage]:
        """Every mail kept so far, oldest first."""
        return [email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
                for path in sorted(self.folder.glob("*.eml"))]
