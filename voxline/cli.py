"""The one `voxline` command: each area contributes its subcommands to this entry point.

- the control plane (`control.commands`): serve, migrate, createsuperuser, jobs, demo, rotate-keys,
  openapi;
- the runtime (`runtime.commands`): worker, simulate, capacity;
- the API client (`voxline.client`): batch upload, batch status, test;
- and `up`, which runs the control plane and a worker together.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from control import commands as control_commands
from runtime import commands as runtime_commands
from voxline.client import agent_tests as test_client
from voxline.client import batch as batch_client
from voxline.common.logs import configure_logging

COMMAND_GROUPS = (
    control_commands.add_commands,
    runtime_commands.add_commands,
    batch_client.add_commands,
    test_client.add_commands,
)


def cmd_up(args: argparse.Namespace) -> int:
    """The control plane here and the worker in a child process, so neither takes down the other."""
    worker = subprocess.Popen([sys.executable, "-m", "voxline", "worker"])
    try:
        return control_commands.cmd_serve(args)
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            worker.kill()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voxline", description="Voxline: real-time voice AI agents."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_commands in COMMAND_GROUPS:
        add_commands(commands)
    up = commands.add_parser("up", help="the control plane and the worker together")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=8000)
    up.set_defaults(handler=cmd_up)
    return parser


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except Exception as error:  # a clear one-line message beats a traceback for operators
        from pydantic import ValidationError

        if isinstance(error, ValidationError):
            print(f"error: invalid settings: {error}", file=sys.stderr)
            return 2
        raise
