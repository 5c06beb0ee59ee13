"""Prometheus's own tools for the tests: `promtool check metrics` and exposition parsing."""

from __future__ import annotations

import shutil
import subprocess

from prometheus_client.parser import text_string_to_metric_families

INSTALL_HINT = "promtool is missing: `make setup` installs Debian's prometheus package"


def promtool_check(exposition: str) -> None:
    """Fail unless `promtool check metrics` accepts the text with no error and no lint warning."""
    promtool = shutil.which("promtool")
    assert promtool, INSTALL_HINT
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=exposition,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), (
        f"promtool check metrics failed ({result.returncode}):\n{result.stdout}{result.stderr}"
    )


def samples(exposition: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of an exposition, keyed by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def sample(exposition: str, name: str, **labels: str) -> float | None:
    return samples(exposition).get((name, frozenset(labels.items())))
