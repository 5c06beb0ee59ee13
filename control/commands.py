"""The control plane's `voxline` subcommands: serve, migrate, jobs, demo, openapi and others."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys
from pathlib import Path

from control.config import Settings, get_settings
from voxline.common.logs import configure_logging

logger = logging.getLogger("voxline")


def _describe_database(settings: Settings) -> str:
    url = settings.resolved_database_url
    if url.startswith("sqlite://"):
        return f"SQLite at {url.removeprefix('sqlite://')}"
    host = url.split("@")[-1]
    return f"PostgreSQL at {host}"


async def _migrate(settings: Settings) -> None:
    from control.db import apply_migrations

    def progress(event: str, app_label: str, name: str) -> None:
        if event == "apply_done":
            print(f"  applied {app_label}.{name}")

    print(f"Migrating {_describe_database(settings)} ...")
    await apply_migrations(settings, progress=progress)
    print("Database schema is up to date.")


def cmd_migrate(args: argparse.Namespace) -> int:
    asyncio.run(_migrate(get_settings()))
    return 0


GRACEFUL_SHUTDOWN_SECONDS = 5


def _server(app, host: str, port: int):
    """A uvicorn server for `app` (httptools when installed); `_serve_app` handles the signals."""
    import contextlib
    from collections.abc import Iterator

    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:  # left to `_serve_app`, for all servers
            yield

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        log_config=None,  # configure_logging's; each request is logged at INFO
        # The app decides which forwarded addresses to trust (VOXLINE_TRUSTED_PROXIES).
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    return Server(config)


async def _serve_app(
    settings: Settings,
    public: tuple[str, int],
    internal: tuple[str, int] | None = None,
    sockets: list | None = None,
) -> None:
    """The app on `public` (and `/internal` apart on `internal`), until SIGINT or SIGTERM.

    `sockets` are listening sockets bound already (by `voxline serve --workers`), in the same
    order. With `internal`, the public listener answers 404 for `/internal`, and both stop
    together.
    """
    import signal

    from control.http.app import create_app
    from control.http.listeners import internal_listener, public_listener

    app = create_app(settings)
    if internal is None:
        servers = [_server(app, *public)]
    else:
        started = asyncio.Event()
        servers = [
            _server(public_listener(app, started), *public),
            _server(internal_listener(app, started), *internal),
        ]

    def stop(signum: int) -> None:
        for server in servers:
            if server.should_exit and signum == signal.SIGINT:
                server.force_exit = True  # a second Ctrl-C: stop waiting for open requests
            server.should_exit = True

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop, signum)
    await asyncio.gather(
        *(
            server.serve(sockets=None if sockets is None else [sockets[index]])
            for index, server in enumerate(servers)
        )
    )


async def _migrate_or_warn(settings: Settings) -> None:
    try:
        await _migrate(settings)
    except Exception as error:  # serve anyway: /health names the database until it is back
        from control.outages import outage_of

        if outage_of(error) is None:
            raise
        logger.warning(
            "%s is unreachable (%s): serving without applying migrations; /health answers 503 "
            "until it is back (then run `voxline migrate` if migrations are pending)",
            _describe_database(settings),
            error,
        )


def _announce(public: tuple[str, int], internal: tuple[str, int] | None) -> None:
    host, port = public
    print(f"Voxline API on http://{host}:{port}  (docs: http://{host}:{port}/docs)")
    if internal is not None:
        print(
            f"Worker endpoints (/internal) on http://{internal[0]}:{internal[1]} only; "
            "the public listener answers 404 for them"
        )


def _run_loop(coroutine) -> None:
    """Run on uvloop where it is installed (it answers more requests per second)."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coroutine)
        return
    uvloop.run(coroutine)


async def _serve(
    settings: Settings, public: tuple[str, int], internal: tuple[str, int] | None = None
) -> None:
    await _migrate_or_warn(settings)
    _announce(public, internal)
    await _serve_app(settings, public, internal)


def _serve_worker(
    index: int, public: tuple[str, int], internal: tuple[str, int] | None, sockets: list
) -> None:
    """One of `voxline serve --workers N`'s processes; only the first runs the background work."""
    configure_logging()
    settings = get_settings()
    if index > 0:
        settings = settings.model_copy(update={"background_workers": False})
    try:
        _run_loop(_serve_app(settings, public, internal, sockets))
    except KeyboardInterrupt:
        pass


def _metrics_directory() -> tuple[Path, bool]:
    """PROMETHEUS_MULTIPROC_DIR emptied of a previous serve's files, or a new temporary one.

    Returns the directory and whether it is ours to remove at exit.
    """
    import tempfile

    configured = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not configured:
        return Path(tempfile.mkdtemp(prefix="voxline-metrics-")), True
    directory = Path(configured)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    return directory, False


def _serve_workers(
    settings: Settings, public: tuple[str, int], internal: tuple[str, int] | None, workers: int
) -> int:
    """`workers` processes sharing the listening sockets, bound here; `/metrics` adds them up.

    The background work (jobs, reaper, dialers) runs in the first worker only.
    """
    import multiprocessing
    import shutil
    import signal
    import socket

    from prometheus_client import multiprocess

    asyncio.run(_migrate_or_warn(settings))
    metrics_directory, ours = _metrics_directory()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_directory)
    sockets = []
    for host, port in (public,) if internal is None else (public, internal):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listening = socket.socket(family, socket.SOCK_STREAM)
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind((host, port))
        listening.listen(2048)
        listening.set_inheritable(True)
        sockets.append(listening)
    _announce(public, internal)
    print(f"{workers} worker processes; metrics of all of them in {metrics_directory}")

    stopping = False

    def stop(signum: int, frame) -> None:
        nonlocal stopping
        stopping = True

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop)
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(
            target=_serve_worker,
            args=(index, public, internal, sockets),
            name=f"voxline-serve-{index}",
        )
        for index in range(workers)
    ]
    for process in processes:
        process.start()
    status = 0
    try:
        while not stopping:
            ended = [process for process in processes if not process.is_alive()]
            if ended:
                logger.error(
                    "worker process %s exited (%s): stopping the others",
                    ended[0].pid,
                    ended[0].exitcode,
                )
                status = 1
                break
            processes[0].join(0.5)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: a graceful stop
        for process in processes:
            process.join(GRACEFUL_SHUTDOWN_SECONDS + 10)
            if process.is_alive():
                process.kill()
                process.join()
            multiprocess.mark_process_dead(process.pid, str(metrics_directory))
        for listening in sockets:
            listening.close()
        if ours:
            shutil.rmtree(metrics_directory, ignore_errors=True)
    return status


def _workers_of(args: argparse.Namespace) -> int:
    workers = getattr(args, "workers", None)
    if workers is None:
        configured = os.environ.get("VOXLINE_WORKERS", "1")
        if not configured.isdigit() or int(configured) < 1:
            raise SystemExit(
                f"error: VOXLINE_WORKERS must be a whole number >= 1, not {configured!r}"
            )
        workers = int(configured)
    if workers < 1:
        raise SystemExit("error: --workers must be at least 1")
    return workers


def cmd_serve(args: argparse.Namespace) -> int:
    settings = get_settings()
    workers = _workers_of(args)
    public = (args.host, args.port)
    internal_port = getattr(args, "internal_port", None)
    internal = (
        None
        if internal_port is None
        else (getattr(args, "internal_host", None) or args.host, internal_port)
    )
    if workers > 1:
        return _serve_workers(settings, public, internal, workers)
    try:
        _run_loop(_serve(settings, public, internal))
    except KeyboardInterrupt:
        pass
    return 0


async def _create_superuser(settings: Settings, email: str, password: str) -> str:
    from tortoise.transactions import in_transaction

    from control.db import close_db, init_db
    from control.models import User
    from control.services import auth as auth_service

    await init_db(settings)
    try:
        email = auth_service.normalise_email(email)
        async with in_transaction():
            user = await User.get_or_none(email=email)
            if user is None:
                user = await auth_service.signup(email, password, "Administrator")
                action = "created"
            else:
                action = "promoted"
            user.is_superuser = True
            await user.save(update_fields=["is_superuser"])
        return action
    finally:
        await close_db()


def cmd_createsuperuser(args: argparse.Namespace) -> int:
    from control.security import check_password_policy

    settings = get_settings()
    email = args.email or input("Email: ").strip()
    password = args.password or os.environ.get("VOXLINE_SUPERUSER_PASSWORD")
    if not password:
        password = getpass.getpass("Password: ")
    try:
        check_password_policy(password)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    asyncio.run(_migrate(settings))
    action = asyncio.run(_create_superuser(settings, email, password))
    print(f"Superuser {email} {action}.")
    return 0


async def _rotate_keys(settings: Settings) -> int:
    from control.db import close_db, init_db
    from control.services.secrets import rotate_secrets

    await init_db(settings)
    try:
        result = await rotate_secrets(settings)
    finally:
        await close_db()
    print(f"Re-encrypted {result.rotated} stored secret(s) with the newest key.")
    if result.unreadable:
        print(
            f"{len(result.unreadable)} secret(s) cannot be decrypted with any configured key "
            "(left as they are; set them again, or add back the key that wrote them):",
            file=sys.stderr,
        )
        for where in result.unreadable:
            print(f"  {where}", file=sys.stderr)
        return 1
    print("Every secret now uses the first key of VOXLINE_ENCRYPTION_KEYS; older keys can go.")
    return 0


def cmd_rotate_keys(args: argparse.Namespace) -> int:
    settings = get_settings()
    asyncio.run(_migrate(settings))
    return asyncio.run(_rotate_keys(settings))


async def _rebuild_reports(settings: Settings, resume: bool) -> int:
    from control.db import close_db, init_db
    from control.services import report_rollups

    await init_db(settings)
    try:
        days = await report_rollups.rebuild(
            resume=resume, progress=lambda done: print(f"  {done} workspace-days", flush=True)
        )
    finally:
        await close_db()
    print(f"Report rollups rebuilt from the calls table: {days} workspace-days recomputed.")
    return 0


def cmd_reports_rebuild(args: argparse.Namespace) -> int:
    settings = get_settings()
    asyncio.run(_migrate(settings))
    return asyncio.run(_rebuild_reports(settings, args.resume))


async def _seed_demo(settings: Settings) -> None:
    from control.db import close_db, init_db
    from control.services import demo

    await init_db(settings)
    try:
        print("Seeding the demo workspace (indexing its knowledge file) ...")
        seeded = await demo.seed(settings)
    finally:
        await close_db()
    print(f"Demo workspace: {seeded.workspace.name} (slug {seeded.workspace.slug})")
    print(f"Demo agent:     {seeded.agent.agent_name} ({seeded.agent.id}) on the local providers")
    if seeded.password:
        print(
            f"Demo login:     {seeded.user.email} / {seeded.password}   (shown once; "
            "set VOXLINE_DEMO_PASSWORD to choose it)"
        )
    else:
        print(f"Demo login:     {seeded.user.email} (password unchanged)")


def cmd_demo(args: argparse.Namespace) -> int:
    settings = get_settings()
    asyncio.run(_migrate(settings))
    asyncio.run(_seed_demo(settings))
    return 0


async def _run_jobs(
    settings: Settings, once: bool, metrics_at: tuple[str, int] | None = None
) -> None:
    import signal

    from redis.asyncio import Redis

    from control import jobs
    from control.db import close_db, init_db
    from control.jobs.background import run_background_work
    from telephony import sip

    await init_db(settings)
    redis = Redis.from_url(settings.redis_url, socket_connect_timeout=1.0, decode_responses=True)
    try:
        if once:
            await jobs.drain(jobs.JobContext(settings, redis))
            print(f"Jobs: {await jobs.queue_state()}")
            return
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        print(
            f"Background jobs (ingestion, analysis, webhooks, the call reaper every "
            f"{settings.reaper_period_seconds:g} s) on {_describe_database(settings)}; Ctrl-C stops"
        )
        metrics_server = None
        if metrics_at is not None:
            from control.metrics import serve_process_metrics

            metrics_server = await serve_process_metrics(*metrics_at, settings.metrics_token)
            print(f"Metrics on http://{metrics_at[0]}:{metrics_at[1]}/metrics")
        try:
            await run_background_work(settings, redis, stop)
        finally:
            if metrics_server is not None:
                await metrics_server.cleanup()
    finally:
        await sip.close_shared_clients()
        await redis.aclose()
        await close_db()


def cmd_jobs(args: argparse.Namespace) -> int:
    metrics_at = (
        None if args.once or not args.metrics_port else (args.metrics_host, args.metrics_port)
    )
    asyncio.run(_run_jobs(get_settings(), args.once, metrics_at))
    return 0


def cmd_openapi(args: argparse.Namespace) -> int:
    """Write the API's OpenAPI document, built from the code as `/openapi.json` serves it."""
    import json

    from control.http.app import create_app

    document = create_app().extensions["QUART_SCHEMA"].openapi_provider.schema()
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"Wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    """The control plane's subcommands: serve, migrate, createsuperuser, jobs, demo, rotate-keys,
    openapi."""
    serve = commands.add_parser("serve", help="run the control plane (the HTTP API)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--internal-port",
        type=int,
        help="serve /internal (the workers' endpoints) only on this port, apart from the API",
    )
    serve.add_argument(
        "--internal-host", help="the address of the --internal-port listener (default: --host)"
    )
    serve.add_argument(
        "--workers",
        type=int,
        help="server processes on the same port (default: VOXLINE_WORKERS, else 1); the "
        "background work runs in the first one",
    )
    serve.set_defaults(handler=cmd_serve)

    migrate = commands.add_parser("migrate", help="apply database schema migrations")
    migrate.set_defaults(handler=cmd_migrate)

    superuser = commands.add_parser("createsuperuser", help="create (or promote) a superuser")
    superuser.add_argument("--email")
    superuser.add_argument("--password", help="else VOXLINE_SUPERUSER_PASSWORD, else a prompt")
    superuser.set_defaults(handler=cmd_createsuperuser)

    jobs = commands.add_parser(
        "jobs",
        help="run the background work alone (ingestion, analysis, webhooks, the call reaper, "
        "the batch dialer); "
        "pair with VOXLINE_BACKGROUND_WORKERS=false on `serve`",
    )
    jobs.add_argument("--once", action="store_true", help="run what is due now, then exit")
    jobs.add_argument("--metrics-host", default="127.0.0.1", help="address of its /metrics")
    jobs.add_argument(
        "--metrics-port", type=int, default=9101, help="port of its /metrics (0: not served)"
    )
    jobs.set_defaults(handler=cmd_jobs)

    demo = commands.add_parser("demo", help="seed the demo workspace, user and agent")
    demo.set_defaults(handler=cmd_demo)

    rotate = commands.add_parser(
        "rotate-keys",
        help="re-encrypt every stored secret with the newest key (the first of "
        "VOXLINE_ENCRYPTION_KEYS, newest first, comma-separated)",
    )
    rotate.set_defaults(handler=cmd_rotate_keys)

    openapi = commands.add_parser(
        "openapi",
        help="write the API's OpenAPI document (as /openapi.json serves it) without a server, "
        "e.g. to generate a client",
    )
    openapi.add_argument("--output", "-o", help="the file to write (default: standard output)")
    openapi.set_defaults(handler=cmd_openapi)

    reports = commands.add_parser("reports", help="the report rollups")
    report_commands = reports.add_subparsers(dest="reports_command", required=True)
    rebuild = report_commands.add_parser(
        "rebuild",
        help="recompute the report rollups from the calls table (idempotent; interrupted, run "
        "it again with --resume to go on where it stopped)",
    )
    rebuild.add_argument(
        "--resume", action="store_true", help="only finish the hours a rebuild left to do"
    )
    rebuild.set_defaults(handler=cmd_reports_rebuild)
