"""`python -m caves_faust.devstack up|down|status|demo` (what `make up/down/demo` run)."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

from caves_faust.devstack import DevstackError, LocalKafka, local_services
from caves_faust.devstack.mailcatcher import MailCatcher
from caves_faust.devstack.process import free_port
from caves_faust.settings import Settings, is_set, load_settings

DEMO_RECIPIENT = "cave@caves-albert.local"
DEMO_SENDER = "stock@caves-albert.local"


def up(settings: Settings) -> list:
    """Start whichever local service is not running; wait until each answers. Returns those started now."""
    started = []
    services = local_services(settings)
    if not services:
        print("KAFKA_BROKER and SNOWFLAKE_ACCOUNT are set: nothing to start locally")
    for service in services:
        was_started = service.start()
        if isinstance(service, LocalKafka):
            service.create_topics([settings.sales_topic, settings.dlq_topic], settings.topic_partitions)
        state = "started" if was_started else "already running"
        print(f"{service.name}: {state} on localhost:{service.port} (data under {service.home})")
        if was_started:
            started.append(service)
    return started


def down(settings: Settings) -> None:
    for service in reversed(local_services(settings)):
        print(f"{service.name}: {'stopped' if service.stop() else 'not running'}")


def status(settings: Settings) -> None:
    for service in local_services(settings):
        print(f"{service.name}: {'running' if service.running() else 'stopped'} (port {service.port})")


DEMO_HISTORY_DAYS = 365


def load_demo_history(settings: Settings, faust: list[str]) -> None:
    """A year of generated past sales into the embedded Snowflake, once (a marker under .devstack/ remembers it):
    the dashboard's year-on-year figures from the first minutes. Never into a real account."""
    if not settings.embedded_snowflake:
        return
    marker = settings.devstack_dir / "history-loaded"
    if marker.exists():
        print(f"history: a year of generated past sales already loaded ({marker.read_text().strip()})")
        return
    path = settings.devstack_dir / "history.db"
    print(f"history: first start, generating and loading {DEMO_HISTORY_DAYS} days of past sales (once)", flush=True)
    for step in (["generate", "--days", str(DEMO_HISTORY_DAYS), "--out", str(path)], ["load", str(path)]):
        if subprocess.run([*faust, "history", *step], stdin=subprocess.DEVNULL).returncode:
            print(f"history: {step[0]} failed (see above): the demo goes on without past sales; "
                  "`make demo` tries again at its next start", flush=True)
            return
    marker.write_text(f"{DEMO_HISTORY_DAYS} days, on {time.strftime('%Y-%m-%d')}\n")
    path.unlink()


def demo(settings: Settings) -> None:
    """The whole product in the foreground: stack, worker, generator, dashboard; a year of past sales at the first
    start. Ctrl-C stops what this started."""
    started = up(settings)
    catcher, worker_env = mail_catcher(settings)
    faust = [sys.executable, "-m", "caves_faust"]
    load_demo_history(settings, faust)
    children = [
        subprocess.Popen([*faust, "worker", "-l", "info"], env=worker_env),
        subprocess.Popen([*faust, "generate", "--rate", "20", "--invalid-ratio", "0.02"]),
        subprocess.Popen([sys.executable, "-m", "caves_faust.dashboard"], stdout=subprocess.DEVNULL),
    ]
    web = f"http://localhost:{settings.web_port}"
    builds = (f"STAGING and PROD built shortly after start, then every {settings.elt_interval_seconds:g} s"
              if settings.elt_interval_seconds else "not built (ELT_INTERVAL_SECONDS=0)")
    print(
        f"\ncaves_faust demo running:\n  worker UI  {web}/\n  stock      {web}/stock/\n"
        f"  tables     {web}/table/\n  metrics    {web}/metrics\n"
        f"  dashboard  http://localhost:{settings.dashboard_port}/\n"
        f"  warehouse  {builds} (docs/warehouse-layers.md)\n"
        f"  mails      {catcher.folder if catcher else 'sent to SMTP_HOST, as configured'}"
        f"{' (one .eml file per mail: low stock, restock, the digest)' if catcher else ''}\n"
        "Ctrl-C stops everything this started.\n",
        flush=True,
    )
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            child.wait()
        if catcher is not None:
            catcher.stop()
        for service in reversed(started):
            service.stop()
            print(f"{service.name}: stopped")


def mail_catcher(settings: Settings) -> tuple[MailCatcher | None, dict[str, str]]:
    """Unless mails are configured (ALERT_EMAIL_TO), a local mail catcher and the worker's environment pointing
    at it; else none and the environment as it is."""
    if is_set("ALERT_EMAIL_TO"):
        return None, dict(os.environ)
    catcher = MailCatcher(settings.devstack_dir / "mails", free_port()).start()
    return catcher, {**os.environ, "ALERT_EMAIL_TO": DEMO_RECIPIENT, "ALERT_EMAIL_FROM": DEMO_SENDER,
                     "SMTP_HOST": catcher.host, "SMTP_PORT": str(catcher.port), "SMTP_STARTTLS": "false"}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m caves_faust.devstack")
    parser.add_argument("action", choices=["up", "down", "status", "demo"])
    action = parser.parse_args().action
    settings = load_settings()
    try:
        {"up": up, "down": down, "status": status, "demo": demo}[action](settings)
    except DevstackError as exc:
        sys.exit(f"caves_faust: {exc}")


if __name__ == "__main__":
    main()
