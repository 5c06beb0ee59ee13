"""`voxline batch upload` and `voxline batch status`: batch calling from a terminal, over the API.

Both talk to a running control plane (`--url`, else `VOXLINE_API_URL`, else
`VOXLINE_PUBLIC_URL`) with an API key (`--api-key`, else `VOXLINE_API_KEY`), and can follow the
batch with a live progress bar until it completes or is cancelled.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

FINISHED = ("completed", "cancelled")
POLL_SECONDS = 2.0
DONE_STATUSES = ("completed", "failed", "cancelled")


def _client(args: argparse.Namespace) -> httpx.Client:
    url = (
        args.url
        or os.environ.get("VOXLINE_API_URL")
        or os.environ.get("VOXLINE_PUBLIC_URL", "http://127.0.0.1:8000")
    )
    key = args.api_key or os.environ.get("VOXLINE_API_KEY")
    if not key:
        raise SystemExit("error: set VOXLINE_API_KEY (or pass --api-key): a developer's API key")
    return httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=120)


def _answer(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = {"detail": response.text[:500]}
    if response.status_code >= 400:
        raise SystemExit(
            f"error: {response.status_code} {body.get('code', '')}: {body.get('detail')}"
        )
    return body


def _summary(console: Console, batch: dict[str, Any]) -> None:
    counts = ", ".join(f"{name} {count}" for name, count in batch["counts"].items() if count)
    outcomes = ", ".join(f"{name} {count}" for name, count in batch["outcomes"].items() if count)
    console.print(
        f"batch {batch['id']} [bold]{batch['status']}[/bold]: {batch['percent_done']:g}% done"
        f" of {batch['total_items']} rows ({counts or 'no items'})"
    )
    if outcomes:
        console.print(f"outcomes: {outcomes}")
    if batch.get("next_attempt_at"):
        console.print(f"next attempt: {batch['next_attempt_at']}")


def _watch(client: httpx.Client, console: Console, batch: dict[str, Any]) -> dict[str, Any]:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[state]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(batch["name"], total=batch["total_items"], state="")
        while True:
            done = sum(batch["counts"].get(status, 0) for status in DONE_STATUSES)
            calling = batch["counts"].get("calling", 0)
            progress.update(task, completed=done, state=f"{batch['status']}, {calling} calling")
            if batch["status"] in FINISHED:
                return batch
            time.sleep(POLL_SECONDS)
            batch = _answer(client.get(f"/batch/{batch['id']}"))


def cmd_upload(args: argparse.Namespace) -> int:
    console = Console()
    path = Path(args.file)
    fields = {
        "name": args.name or path.stem,
        "agent_id": args.agent,
        "agent_phone_number": getattr(args, "from"),
    }
    for option in (
        "scheduled_time",
        "timezone",
        "default_country",
        "calls_per_minute",
        "max_attempts",
        "retry_delay_minutes",
        "retry_on",
        "earliest_time",
        "latest_time",
    ):
        value = getattr(args, option)
        if value is not None:
            fields[option] = str(value)
    with _client(args) as client, path.open("rb") as file:  # streamed, not read whole
        batch = _answer(
            client.post("/batch/upload", data=fields, files={"file": (path.name, file, "text/csv")})
        )
        console.print(
            f"batch {batch['id']}: {batch['accepted']} rows accepted, "
            f"{batch['rejected_count']} rejected"
        )
        for row in batch["rejected"][: args.show_rejects]:
            console.print(f"  line {row['line']}: {row['reason']}")
        if args.watch:
            batch = _watch(client, console, batch)
        _summary(console, batch)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    console = Console()
    with _client(args) as client:
        batch = _answer(client.get(f"/batch/{args.batch_id}"))
        if args.watch:
            batch = _watch(client, console, batch)
        _summary(console, batch)
    return 0


def add_commands(commands: Any) -> None:
    """`voxline batch ...` on the main parser's subcommands."""
    batch = commands.add_parser("batch", help="batch calling: upload a CSV, follow its progress")
    actions = batch.add_subparsers(dest="batch_command", required=True, metavar="ACTION")

    def connection(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--url", help="the control plane (default: $VOXLINE_API_URL)")
        parser.add_argument("--api-key", help="a developer API key (default: $VOXLINE_API_KEY)")
        parser.add_argument(
            "--watch", action=argparse.BooleanOptionalAction, default=True,
            help="follow the batch with a progress bar until it finishes (default: on)",
        )  # fmt: skip

    upload = actions.add_parser("upload", help="upload a CSV and start (or schedule) a batch")
    upload.add_argument("file", help="the CSV: a phone column, every other column a variable")
    upload.add_argument("--agent", required=True, help="the agent's id")
    upload.add_argument("--from", required=True, help="the agent's phone number (E.164)")
    upload.add_argument("--name", help="the batch's name (default: the file's name)")
    upload.add_argument("--scheduled-time", dest="scheduled_time", help="ISO 8601 start time")
    upload.add_argument("--timezone", help="IANA time zone of the schedule and window")
    upload.add_argument("--default-country", dest="default_country", help="e.g. US")
    upload.add_argument("--calls-per-minute", dest="calls_per_minute", type=int)
    upload.add_argument("--max-attempts", dest="max_attempts", type=int)
    upload.add_argument("--retry-delay-minutes", dest="retry_delay_minutes", type=int)
    upload.add_argument("--retry-on", dest="retry_on", help="e.g. busy,no_answer")
    upload.add_argument("--earliest-time", dest="earliest_time", help="HH:MM")
    upload.add_argument("--latest-time", dest="latest_time", help="HH:MM")
    upload.add_argument("--show-rejects", dest="show_rejects", type=int, default=20)
    connection(upload)
    upload.set_defaults(handler=cmd_upload)

    status = actions.add_parser("status", help="a batch's status and progress")
    status.add_argument("batch_id")
    connection(status)
    status.set_defaults(handler=cmd_status)
