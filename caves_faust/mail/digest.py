"""The closing-time digest: `faust -A caves_faust digest --preview|--send`, and the leader's daily mail at DIGEST_TIME.

Once a day: the leader checks every `CHECK_SECONDS` whether DIGEST_TIME has passed today (SHOP_TIMEZONE) and
today's digest is not marked sent on `<app>-digests-sent` (one message per day, keyed by the date); then it
gathers, sends (retrying through an SMTP outage), and marks. A worker restarted at 20:05 thus still sends the
20:00 digest, and one restarted at 20:10 after it went sends none. Limits: a leader that dies after the server
accepted the mail and before the mark sends it again on the next leader (the same Message-ID); a digest sent by
hand (`--send`) is not marked, so the day's scheduled one still goes.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from aiokafka import TopicPartition
from faust.cli import option

from caves_faust.cli import ExitCodeCommand
from caves_faust.faust_app import app, settings
from caves_faust.kafka.topic_log import group_less_consumer, records
from caves_faust.mail import smtp
from caves_faust.mail.digest_figures import gather
from caves_faust.mail.digest_text import digest_mail, text
from caves_faust.mail.outbox import SMTP_RETRY
from caves_faust.observability import metrics
from caves_faust.observability.logs import one_line

log = logging.getLogger(__name__)

CHECK_SECONDS = 10.0
MARKS_RETENTION = timedelta(days=30)

digests_sent_topic = app.topic(
    f"{settings.app_id}-digests-sent", key_type=bytes, value_type=bytes, key_serializer="raw",
    value_serializer="raw", partitions=1, retention=MARKS_RETENTION, internal=True,
)


declared: list[bool] = []  # the marks topic was declared by this process


async def sent_days() -> set[str]:
    """The shop days (ISO dates) whose digest is marked sent."""
    if not declared:  # only written to, so Faust does not create it at start; once per process (it logs)
        await digests_sent_topic.maybe_declare()
        declared.append(True)
    tp = TopicPartition(digests_sent_topic.get_topic_name(), 0)
    async with group_less_consumer(settings.kafka_bootstrap) as consumer:
        return {record.key.decode() async for record in records(consumer, tp) if record.key}


async def send_now(now: datetime | None = None) -> str:
    """Gather the digest and hand it to the SMTP server (raises one of smtp.SMTP_ERRORS): its subject."""
    digest = await gather(settings, now)
    message = digest_mail(digest, settings.app_id)
    await asyncio.to_thread(smtp.send, settings, message)
    metrics.digests_sent.inc()
    return str(message["Subject"])


@app.command(
    option("--preview", is_flag=True, default=False, help="Print today's digest (plain text) now."),
    option("--send", "send_it", is_flag=True, default=False, help="Send today's digest to ALERT_EMAIL_TO now."),
    base=ExitCodeCommand,
)
async def digest(self: ExitCodeCommand, preview: bool, send_it: bool) -> int:
    """The closing-time digest mail, printed (--preview) or sent (--send) now: exit 0 when done."""
    if preview == send_it:
        self.say("digest: give one of --preview or --send")
        return 2
    if preview:
        self.say(text(await gather(settings)))
        return 0
    if not settings.mail_on:
        self.say("digest: ALERT_EMAIL_TO is not set: nobody to send it to")
        return 1
    try:
        subject = await send_now()
    except smtp.SMTP_ERRORS as exc:
        self.say(f"digest: the mail server at {settings.smtp_host}:{settings.smtp_port} refused it: {one_line(exc)}")
        return 1
    self.say(f"digest: {subject!r} sent to {', '.join(settings.alert_email_to)}")
    return 0


def due(now: datetime, digest_time: str) -> bool:
    """Whether today's digest time has come (a later check the same day still finds it due)."""
    return now.strftime("%H:%M") >= digest_time


already_told: set[str] = set()  # the days this worker logged as already sent (once each)
sent_here: dict[str, str] = {}  # day -> subject of the digest this worker sent, its mark maybe not written yet

if settings.digest_time and settings.mail_on:
    @app.timer(CHECK_SECONDS)
    async def digest_at_closing_time() -> None:
        """The leader sends today's digest once DIGEST_TIME has passed, unless it is marked sent."""
        now = datetime.now(ZoneInfo(settings.shop_timezone))
        if not app.is_leader() or not due(now, settings.digest_time):
            return
        day = now.date().isoformat()
        if day in already_told:  # known marked sent: the marks topic is not read again every CHECK_SECONDS
            return
        try:
            if day not in sent_here:
                if day in await sent_days():
                    if day not in already_told:
                        already_told.add(day)
                        log.info("digest: today's (%s) was already sent", day)
                    return
                sent_here[day] = await SMTP_RETRY.call(
                    "mail server (digest)", lambda: send_now(now), smtp.SMTP_ERRORS, reason="smtp",
                    stopping=lambda: app.should_stop, counted=lambda reason: metrics.mails_failing.inc())
                log.info("digest: %r sent to %d recipient(s)", sent_here[day], len(settings.alert_email_to))
            if day not in already_told:  # sent here: the mark until it is written (the mail is not sent again)
                delivery = await digests_sent_topic.send(key=day.encode(), value=sent_here[day].encode())
                await delivery
                already_told.add(day)
        except Exception as exc:  # Kafka or Snowflake away, or stopping: the next check tries again
            log.warning("digest: not sent or not marked yet: %s", one_line(exc))
