"""`voxline test`: an agent's test suite from a YAML file, run through the control plane.

The file holds `tests: [<case>, ...]` in the API's schema. The command creates or updates the
agent's cases by name, starts a run, follows it, prints a summary table and (with `--junit`)
writes JUnit XML. Exit status: 0 every case passed, 1 any failed, was not judged or errored,
2 bad usage or a file that does not validate (with the field path).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import httpx
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

PASSED, FAILED, USAGE = 0, 1, 2
FINAL = ("passed", "failed", "error", "cancelled")
POLL_SECONDS = 1.0
DEFAULT_URL = "http://127.0.0.1:8000"
#: What a case left out of the file gets, so an update replaces the stored case.
CASE_DEFAULTS = {"kind": "scripted", "variables": {}, "mocks": {}, "success": [], "max_turns": 10}


class UsageError(Exception):
    """Bad usage or a suite that does not validate: exit 2 with this message."""


class ApiError(Exception):
    """The control plane refused or failed: exit 1 with this message."""


def _answer(response: httpx.Response) -> Any:
    try:
        body = response.json() if response.content else {}
    except ValueError:
        body = {"detail": response.text[:500]}
    if response.status_code >= 400:
        message = f"{response.status_code} {body.get('code', '')}: {body.get('detail')}"
        raise (UsageError if response.status_code in (400, 404, 422) else ApiError)(message)
    return body


def load_suite(path: Path) -> list[dict[str, Any]]:
    """The cases of a suite file.

    Raises:
        UsageError: the file cannot be read, is not YAML, or is not `tests: [<case>, ...]`.
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"{path}: cannot read it: {error}") from error
    except yaml.YAMLError as error:
        raise UsageError(f"{path}: not valid YAML: {error}") from error
    if not isinstance(data, dict) or not isinstance(data.get("tests"), list) or not data["tests"]:
        raise UsageError(f"{path}: tests: the file must hold `tests:`, a list of test cases")
    names: set[str] = set()
    for index, case in enumerate(data["tests"]):
        if not isinstance(case, dict):
            raise UsageError(f"{path}: tests[{index}]: a test case is a mapping")
        name = case.get("name")
        if not isinstance(name, str) or not name:
            raise UsageError(f"{path}: tests[{index}].name: every case needs a name")
        if name in names:
            raise UsageError(f"{path}: tests[{index}].name: {name!r} appears twice")
        names.add(name)
    return data["tests"]


def _pages(client: httpx.Client, path: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    page = 1
    while True:
        body = _answer(client.get(path, params={"page": page, "page_size": 100}))
        items.extend(body["items"])
        if not body["has_next"]:
            return items
        page += 1


def sync_cases(client: httpx.Client, agent: str, cases: list[dict[str, Any]]) -> list[str]:
    """Create or update the agent's cases by name; their ids, in the file's order.

    Raises:
        UsageError: a case the control plane refused, naming `tests[i].<field path>`.
    """
    stored = {case["name"]: case["id"] for case in _pages(client, f"/agents/{agent}/tests")}
    ids = []
    for index, case in enumerate(cases):
        body = {**CASE_DEFAULTS, **case}
        if case["name"] in stored:
            response = client.patch(f"/agents/{agent}/tests/{stored[case['name']]}", json=body)
        else:
            response = client.post(f"/agents/{agent}/tests", json=body)
        if response.status_code == 400:
            errors = response.json().get("errors") or [{"field": "", "message": response.text}]
            lines = [f"tests[{index}].{error['field']}: {error['message']}" for error in errors]
            raise UsageError("the suite does not validate:\n  " + "\n  ".join(lines))
        ids.append(_answer(response)["id"])
    return ids


def _follow(client: httpx.Client, console: Console, run: dict[str, Any]) -> dict[str, Any]:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[state]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("attempts", total=None, state="queued")
        while True:
            run = _answer(client.get(f"/test-runs/{run['id']}"))
            done = sum(len(case["attempts"]) for case in run["cases"])
            total = len(run["cases"]) * run["repeat"]
            state = f"{run['status']}: {run['passed']} passed, {run['failed']} failed"
            progress.update(task, total=total, completed=done, state=state)
            if run["status"] in FINAL:
                return run
            time.sleep(POLL_SECONDS)


def failed_expectations(case: dict[str, Any]) -> list[str]:
    """`turn N: type: reason` of each expectation that did not pass, once per kind of failure."""
    lines: list[str] = []
    for attempt in case["attempts"]:
        if attempt.get("error"):
            lines.append(f"error: {attempt['error']}")
        for expectation in attempt["expectations"]:
            if expectation["status"] == "passed":
                continue
            where = "" if expectation.get("turn") is None else f"turn {expectation['turn']}: "
            line = f"{where}{expectation['type']} {expectation['status']}: {expectation['reason']}"
            if line not in lines:
                lines.append(line)
    return lines


def print_summary(console: Console, run: dict[str, Any]) -> None:
    table = Table(title=f"test run {run['id']}: {run['status']}")
    table.add_column("case")
    table.add_column("status")
    table.add_column("pass rate", justify="right")
    table.add_column("failed expectations")
    for case in run["cases"]:
        rate = "" if case.get("pass_rate") is None else f"{case['pass_rate']:.0%}"
        table.add_row(
            case["name"], case.get("status") or "", rate, "\n".join(failed_expectations(case))
        )
    console.print(table)
    console.print(
        f"{run['passed']} passed, {run['failed']} failed, {run['not_judged']} not judged, "
        f"{run['errored']} errored"
    )
    for warning in run.get("warnings") or []:
        console.print(f"warning: {warning}")
    if run.get("error"):
        console.print(f"error: {run['error']}")


def junit_xml(run: dict[str, Any], agent: str) -> bytes:
    """The run as JUnit XML: a case not judged counts as a failure, never as passed."""
    cases = run["cases"]
    statuses = [case.get("status") for case in cases]
    suite = ElementTree.Element(
        "testsuite",
        name=f"voxline agent {agent}",
        tests=str(len(cases)),
        failures=str(statuses.count("failed") + statuses.count("not_judged")),
        errors=str(statuses.count("error")),
        skipped="0",
    )
    for case in cases:
        element = ElementTree.SubElement(
            suite, "testcase", name=case["name"], classname=f"voxline.agent.{agent}"
        )
        status = case.get("status")
        details = "\n".join(failed_expectations(case))
        if status in ("failed", "not_judged"):
            message = "not judged" if status == "not_judged" else "expectations failed"
            ElementTree.SubElement(element, "failure", message=message).text = details
        elif status != "passed":
            ElementTree.SubElement(element, "error", message=status or "not run").text = details
    root = ElementTree.Element("testsuites")
    root.append(suite)
    return ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)


def _judge(value: str | None) -> dict[str, str] | None:
    if value is None:
        return None
    provider, _, model = value.partition(":")
    if not provider:
        raise UsageError("--judge: give PROVIDER:MODEL, e.g. openai:gpt-4o-mini")
    return {"provider": provider, **({"model": model} if model else {})}


def run_suite(args: argparse.Namespace, console: Console) -> int:
    cases = load_suite(Path(args.file)) if args.file else None
    judge = _judge(args.judge)
    key = args.api_key or os.environ.get("VOXLINE_API_KEY")
    if not key:
        raise UsageError("set VOXLINE_API_KEY (or pass --api-key): a developer's API key")
    url = args.url or os.environ.get("VOXLINE_API_URL") or DEFAULT_URL
    with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=60) as client:
        request: dict[str, Any] = {"mode": "voice" if args.voice else "text", "repeat": args.repeat}
        if cases is not None:
            request["test_ids"] = sync_cases(client, args.agent, cases)
        if judge is not None:
            request["judge"] = judge
        if args.agent_version is not None:
            request["version"] = args.agent_version
        run = _answer(client.post(f"/agents/{args.agent}/test-runs", json=request))
        console.print(f"test run {run['id']} started")
        run = _follow(client, console, run)
    if run.get("agent_version") is not None:
        console.print(f"tested agent version {run['agent_version']}")
    print_summary(console, run)
    if args.junit:
        Path(args.junit).write_bytes(junit_xml(run, args.agent))
    return PASSED if run["status"] == "passed" else FAILED


def cmd_test(args: argparse.Namespace) -> int:
    console = Console()
    try:
        return run_suite(args, console)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE
    except (ApiError, httpx.HTTPError) as error:
        print(f"error: {error}", file=sys.stderr)
        return FAILED


def add_commands(commands: Any) -> None:
    """`voxline test ...` on the main parser's subcommands."""
    test = commands.add_parser(
        "test",
        help="run an agent's test suite through the control plane (exit 0 passed, 1 failed)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    test.add_argument("file", nargs="?", help="the suite: `tests: [<case>, ...]` in YAML")
    test.add_argument("--agent", required=True, help="the agent's id")
    test.add_argument("--voice", action="store_true", help="speak the lines through the pipeline")
    test.add_argument(
        "--repeat", type=int, default=1, choices=range(1, 11), metavar="N",
        help="attempts per case, 1-10 (default 1)",
    )  # fmt: skip
    test.add_argument("--judge", help="PROVIDER:MODEL of the judge, e.g. openai:gpt-4o-mini")
    test.add_argument(
        "--agent-version", type=int, metavar="N",
        help="the agent version to test (default: the latest; a publish may require its pass)",
    )  # fmt: skip
    test.add_argument("--junit", help="write JUnit XML to this path")
    test.add_argument("--url", help=f"the control plane (default: $VOXLINE_API_URL, {DEFAULT_URL})")
    test.add_argument("--api-key", help="a developer API key (default: $VOXLINE_API_KEY)")
    test.set_defaults(handler=cmd_test)
