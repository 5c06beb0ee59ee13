"""The worker's report spool: call reports kept on disk until the control plane has taken them.

A job's report is written to `<outbox>/<call id>.json` (a temporary file, then a rename, so a
crash never leaves half a report) before it is first posted, and deleted once the control plane
has answered 2xx, or has refused it for good (a 4xx other than 401, 403, 408 and 429).
Connection errors, 5xx, 401, 403, 408 and 429 are retried with exponential backoff for as long as
the process lives.

Job processes are killed a few seconds after their shutdown begins, so a report can outlive the
process that wrote it: the worker's main process runs `resend_forever`, which re-sends every
report left by an earlier process at start-up, then any report left stale since. Both paths go
through `deliver`. Sending a report twice is safe: the control plane applies a call's report
once and answers later copies with `applied: false`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import time
import uuid
from pathlib import Path

from runtime.control_client import ControlPlane, ControlPlaneError
from runtime.spec import CallReport
from voxline.common.retry import Backoff, retryable_status

logger = logging.getLogger(__name__)

#: Refusals that a fixed configuration turns into success: the report is kept for them, since a
#: wrong or rotating service token (401/403) is an operator's to fix, not a reason to lose a call.
KEPT_ON_STATUSES = frozenset({401, 403})


def refused_for_good(error: ControlPlaneError) -> bool:
    """The control plane will never take what it refused (a 4xx other than 401, 403, 408, 429)."""
    # No status: it was not reached at all, which is worth another try.
    return error.status is not None and not retryable_status(error.status, also=KEPT_ON_STATUSES)


FIRST_RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 30.0
#: How often the main process looks for reports a job process left behind.
SWEEP_SECONDS = 30.0
#: A report this old whose job is no longer retrying it; longer than a job's shutdown lasts.
STALE_SECONDS = 60.0
SUFFIX = ".json"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


class ReportSpool:
    """A directory of call reports not yet taken by the control plane."""

    def __init__(
        self,
        directory: Path,
        *,
        first_retry_seconds: float = FIRST_RETRY_SECONDS,
        max_retry_seconds: float = MAX_RETRY_SECONDS,
    ) -> None:
        self.directory = Path(directory)
        self.first_retry_seconds = first_retry_seconds
        self.max_retry_seconds = max_retry_seconds

    def path_for(self, call_id: str) -> Path:
        """The report's file: named by the call id (a UUID), never by anything else."""
        if not _SAFE_NAME.match(call_id):
            raise ValueError(f"not a call id: {call_id!r}")
        return self.directory / f"{call_id}{SUFFIX}"

    def keep(self, report: CallReport) -> Path:
        """Write the report to disk atomically (tmp file, fsync, rename); returns its path."""
        path = self.path_for(report.call_id)
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            with tmp.open("w", encoding="utf-8") as file:
                json.dump(report.to_dict(), file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        _fsync_directory(self.directory)
        return path

    def pending(self) -> list[Path]:
        """The reports on disk, oldest first."""
        if not self.directory.is_dir():
            return []
        paths = [path for path in self.directory.iterdir() if path.name.endswith(SUFFIX)]
        return sorted(paths, key=_mtime)

    def load(self, path: Path) -> CallReport | None:
        """The report in `path`; None (and the file set aside as `.bad`) when it is unreadable."""
        try:
            return CallReport.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None  # delivered meanwhile
        except (OSError, ValueError) as error:
            logger.error("report file %s is unreadable (%s); setting it aside", path, error)
            with contextlib.suppress(OSError):
                path.replace(path.with_suffix(".bad"))
            return None

    async def deliver(self, control: ControlPlane, report: CallReport) -> bool:
        """Keep the report on disk, then post it until the control plane has taken it.

        Returns:
            True once the control plane has taken it (2xx); False when it refused it for good
            (a 4xx other than 401, 403, 408 and 429). Either way the file is gone. Other
            failures are retried with backoff until the task is cancelled (the file stays).
        """
        path = await asyncio.to_thread(self.keep, report)
        backoff = Backoff.exponential(self.first_retry_seconds, cap=self.max_retry_seconds)
        attempt = 0
        while True:
            attempt += 1
            delay = backoff.delay(attempt)
            try:
                answer = await control.report(report)
            except ControlPlaneError as error:
                # A wrong service token (401/403) is an operator's mistake to fix, not a reason
                # to lose the call: keep the report and keep trying.
                if refused_for_good(error):
                    logger.error(
                        "call %s: the control plane refused its report for good, dropping it: %s",
                        report.call_id,
                        error,
                    )
                    path.unlink(missing_ok=True)
                    return False
                logger.warning(
                    "call %s: report not taken (attempt %d: %s); kept in %s, retrying in %.1f s",
                    report.call_id,
                    attempt,
                    error,
                    path,
                    delay,
                )
            except Exception:
                # a bug of ours must not lose the report: it stays on disk and is retried
                logger.exception(
                    "call %s: report attempt %d failed; retrying in %.1f s",
                    report.call_id,
                    attempt,
                    delay,
                )
            else:
                path.unlink(missing_ok=True)
                if attempt > 1 or answer.get("applied") is False:
                    logger.info(
                        "call %s: report taken after %d attempt(s) (applied: %s)",
                        report.call_id,
                        attempt,
                        answer.get("applied", True),
                    )
                return True
            await asyncio.sleep(delay)

    async def resend_forever(
        self,
        control: ControlPlane,
        *,
        sweep_seconds: float = SWEEP_SECONDS,
        stale_seconds: float = STALE_SECONDS,
    ) -> None:
        """Re-send the reports earlier processes left: all of them now, then stale ones.

        Runs until cancelled (then stops its deliveries, whose files stay for next time).
        """
        in_flight: dict[Path, asyncio.Task[bool]] = {}
        started = time.time()
        try:
            while True:
                for path in self.pending():
                    if path in in_flight:
                        continue
                    # at start-up everything is an orphan; later, a fresh file is a live job's
                    if _mtime(path) > started and time.time() - _mtime(path) < stale_seconds:
                        continue
                    report = self.load(path)
                    if report is None:
                        continue
                    logger.info("call %s: re-sending a report left in %s", report.call_id, path)
                    task = asyncio.create_task(self.deliver(control, report))
                    in_flight[path] = task

                    def forget(_: asyncio.Task[bool], path: Path = path) -> None:
                        in_flight.pop(path, None)

                    task.add_done_callback(forget)
                await asyncio.sleep(sweep_seconds)
        finally:
            for task in list(in_flight.values()):
                task.cancel()
            await asyncio.gather(*in_flight.values(), return_exceptions=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (POSIX); best effort elsewhere."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
