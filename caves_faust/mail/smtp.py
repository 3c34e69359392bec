"""One mail handed to the SMTP server (SMTP_HOST, SMTP_PORT, optional STARTTLS and login): blocking, for a thread.

SMTP has no idempotency: a mail the server accepted is sent, whatever the caller does next. The login's password
never reaches a log line (settings keep it as a `Secret`; smtplib's debug output stays off).
"""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

from caves_faust.settings import Settings

SMTP_TIMEOUT_SECONDS = 10
SMTP_ERRORS = (OSError, smtplib.SMTPException)  # refused, unreachable, timed out, or a 4xx/5xx answer


def send(settings: Settings, message: EmailMessage) -> None:
    """Send `message` to ALERT_EMAIL_TO from ALERT_EMAIL_FROM; raises one of SMTP_ERRORS when it was not accepted."""
    for header, value in (("From", settings.alert_email_from), ("To", ", ".join(settings.alert_email_to))):
        del message[header]  # a retry sends the same message: one header each
        message[header] = value
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=SMTP_TIMEOUT_SECONDS) as server:
        if settings.smtp_starttls:
            server.starttls()
        if settings.smtp_user:
            server.login(settings.smtp_user, str(settings.smtp_password))
        server.send_message(message)
