"""Outgoing email over SMTP (reset links, invitations)."""

from __future__ import annotations

import logging
from email.message import EmailMessage

import aiosmtplib

from control.config import Settings

logger = logging.getLogger(__name__)


class MailError(Exception):
    """The SMTP server refused or could not be reached."""


async def send_email(settings: Settings, to: str, subject: str, body: str) -> None:
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = to
    # A header holds one line: a name with a line break (a workspace's, say) must not end it.
    message["Subject"] = " ".join(subject.split())
    message.set_content(body)
    try:
        await aiosmtplib.send(
            message,
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password,
            use_tls=settings.smtp_tls == "tls",
            start_tls=settings.smtp_tls == "starttls",
            timeout=settings.smtp_timeout_seconds,
        )
    except (aiosmtplib.SMTPException, OSError) as error:
        raise MailError(
            f"could not send email via {settings.smtp_host}:{settings.smtp_port}"
        ) from error
    logger.info("sent email %r", subject)
