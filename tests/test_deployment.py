"""The docker-compose deployment: it validates, it is complete, and it refuses missing secrets."""

import ipaddress
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.fakes.livekit_server import LIVEKIT_SERVER_IMAGE, LIVEKIT_SIP_IMAGE

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DEPLOY_DIR = ROOT / ".deploy"

SERVICES = {
    "postgres",
    "redis",
    "livekit",
    "livekit-sip",
    "chroma",
    "control",
    "worker",
    "prometheus",
    "grafana",
}

# Dummy values for every variable docker-compose.yml requires.
SECRETS = {
    "POSTGRES_PASSWORD": "dummy-postgres-password",
    "VOXLINE_JWT_SECRET": "dummy-jwt-secret",
    "VOXLINE_SERVICE_TOKEN": "dummy-service-token",
    "VOXLINE_ENCRYPTION_KEY": "dummy-encryption-key",
    "LIVEKIT_API_KEY": "dummy-api-key",
    "LIVEKIT_API_SECRET": "dummy-api-secret",
    "GRAFANA_ADMIN_PASSWORD": "dummy-grafana-password",
    "VOXLINE_METRICS_TOKEN": "dummy-metrics-token",
}


def run_compose_config(tmp_path: Path, variables: dict[str, str]) -> subprocess.CompletedProcess:
    """Runs `docker-compose config` with only `variables` set, ignoring any local `.env`."""
    executable = shutil.which("docker-compose")
    if executable is None:
        pytest.fail("docker-compose is not on PATH: run make test (it installs docker-compose)")
    empty_env_file = tmp_path / "empty.env"
    empty_env_file.write_text("")
    environment = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **variables}
    return subprocess.run(
        [executable, "--env-file", str(empty_env_file), "-f", str(COMPOSE_FILE), "config"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict:
    result = run_compose_config(tmp_path_factory.mktemp("compose"), SECRETS)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_all_services_are_defined(rendered):
    assert SERVICES <= set(rendered["services"])


def test_control_and_worker_share_one_image_build(rendered):
    services = rendered["services"]
    control, worker, migrate = services["control"], services["worker"], services["migrate"]
    assert control["build"]["dockerfile"] == ".deploy/Dockerfile"
    assert Path(control["build"]["context"]) == ROOT
    assert worker["build"] == control["build"] == migrate["build"]
    assert worker["image"] == control["image"] == migrate["image"]
    assert control["command"][:6] == ["voxline", "serve", "--host", "0.0.0.0", "--port", "8000"]
    assert worker["command"] == ["voxline", "worker"]


def test_control_starts_after_migrations_and_healthy_stores(rendered):
    services = rendered["services"]
    assert services["migrate"]["command"] == ["voxline", "migrate"]
    depends_on = services["control"]["depends_on"]
    assert depends_on["migrate"]["condition"] == "service_completed_successfully"
    assert depends_on["postgres"]["condition"] == "service_healthy"
    assert depends_on["redis"]["condition"] == "service_healthy"
    assert "healthcheck" in services["postgres"]
    assert "healthcheck" in services["redis"]
    assert "healthcheck" in services["control"]


def test_secrets_reach_the_control_plane_and_worker(rendered):
    control = rendered["services"]["control"]["environment"]
    worker = rendered["services"]["worker"]["environment"]
    assert control["VOXLINE_ENV"] == "production"
    assert control["VOXLINE_DATABASE_URL"] == (
        "postgres://voxline:dummy-postgres-password@postgres:5432/voxline"
    )
    assert control["VOXLINE_JWT_SECRET"] == "dummy-jwt-secret"
    assert control["VOXLINE_ENCRYPTION_KEY"] == "dummy-encryption-key"
    assert worker["VOXLINE_API_URL"] == "http://control:8001"  # the internal listener
    for environment in (control, worker):
        assert environment["VOXLINE_SERVICE_TOKEN"] == "dummy-service-token"
        assert environment["LIVEKIT_URL"] == "ws://livekit:7880"
        assert environment["LIVEKIT_API_KEY"] == "dummy-api-key"
        assert environment["LIVEKIT_API_SECRET"] == "dummy-api-secret"


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_config_fails_when_a_secret_is_missing(tmp_path, missing):
    variables = {name: value for name, value in SECRETS.items() if name != missing}
    result = run_compose_config(tmp_path, variables)
    assert result.returncode != 0
    assert f"set {missing} in .env" in result.stderr


def test_livekit_signs_webhooks_to_the_control_plane(rendered):
    livekit_config = yaml.safe_load((DEPLOY_DIR / "livekit.yaml").read_text())
    assert livekit_config["webhook"]["urls"] == ["http://control:8000/webhook/livekit"]
    assert livekit_config["redis"]["address"] == "redis:6379"
    environment = rendered["services"]["livekit"]["environment"]
    assert environment["LIVEKIT_KEYS"] == "dummy-api-key: dummy-api-secret"
    assert environment["LIVEKIT_WEBHOOK_API_KEY"] == "dummy-api-key"


def test_sip_publishes_its_signalling_port_and_whole_rtp_range(rendered):
    sip_config = yaml.safe_load((DEPLOY_DIR / "sip.yaml").read_text())
    start, end = (int(port) for port in sip_config["rtp_port"].split("-"))
    published = {
        (port["protocol"], port["target"]) for port in rendered["services"]["livekit-sip"]["ports"]
    }
    assert {("udp", 5060), ("tcp", 5060)} <= published
    assert {("udp", port) for port in range(start, end + 1)} <= published


def test_prometheus_scrapes_control_workload_and_worker_metrics():
    prometheus_config = yaml.safe_load((DEPLOY_DIR / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in prometheus_config["scrape_configs"]}
    control, worker = jobs["voxline-control"], jobs["voxline-worker"]
    assert control["metrics_path"] == "/reports/workload"
    assert control["dns_sd_configs"][0] == {"names": ["control"], "type": "A", "port": 8000}
    assert worker["dns_sd_configs"][0] == {"names": ["worker"], "type": "A", "port": 9100}
    control_metrics = jobs["voxline-control-metrics"]
    assert control_metrics["metrics_path"] == "/metrics"
    assert control_metrics["dns_sd_configs"][0] == control["dns_sd_configs"][0]


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard(rendered):
    grafana = rendered["services"]["grafana"]
    # docker-compose v1 renders `source:target:mode`.
    mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in grafana["volumes"]}
    assert Path(mounts["/etc/grafana/provisioning"]) == DEPLOY_DIR / "grafana" / "provisioning"
    assert Path(mounts["/var/lib/grafana/dashboards"]) == DEPLOY_DIR / "grafana" / "dashboards"
    provisioning = DEPLOY_DIR / "grafana" / "provisioning"
    [source] = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["url"] == "http://prometheus:9090"
    dashboard = json.loads((DEPLOY_DIR / "grafana" / "dashboards" / "voxline.json").read_text())
    datasources = {
        target["datasource"]["uid"] for panel in dashboard["panels"] for target in panel["targets"]
    }
    assert datasources == {source["uid"]}


def test_env_example_lists_every_variable_the_compose_file_reads():
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", COMPOSE_FILE.read_text()))
    env_example = (DEPLOY_DIR / "env.example").read_text()
    listed = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", env_example, flags=re.MULTILINE))
    assert used - listed == set()


def test_the_image_holds_every_package_the_project_installs():
    # The image copies the packages one by one; a new top-level package (voxline/ came with the
    # composed command) must be copied and let through the build context's filter too.
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {
        pattern.rstrip("*")
        for pattern in project["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    dockerfile = (DEPLOY_DIR / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\w+) \./\1$", dockerfile, re.MULTILINE))
    allowed = set(
        re.findall(r"^!(\w+)$", (DEPLOY_DIR / "Dockerfile.dockerignore").read_text(), re.M)
    )
    assert packages == copied, packages ^ copied
    assert packages <= allowed, packages - allowed
    assert "voxline" in packages


def _ports(service: dict) -> list[tuple[str, int]]:
    """(host address, container port) of each port a service publishes; docker-compose v1
    renders one with a host address as `ip:published:target/protocol`, others as mappings."""
    ports = []
    for port in service.get("ports", []):
        if isinstance(port, str):
            host_ip, _, target = port.split("/")[0].rsplit(":", 2)
            ports.append((host_ip, int(target)))
        else:
            ports.append((port.get("host_ip", "0.0.0.0"), int(port["target"])))
    return ports


def _published(service: dict) -> set[int]:
    return {target for _, target in _ports(service)}


def test_internal_endpoints_have_their_own_port_inside_the_compose_network(rendered):
    services = rendered["services"]
    control, worker = services["control"], services["worker"]
    command = control["command"]
    internal_port = int(command[command.index("--internal-port") + 1])
    assert internal_port != 8000
    # The API is published to the host's loopback only, for the TLS proxy; /internal nowhere.
    assert _ports(control) == [("127.0.0.1", 8000)]
    assert internal_port not in _published(control)
    assert worker["environment"]["VOXLINE_API_URL"] == f"http://control:{internal_port}"
    # LiveKit's webhook is a public route: it stays on the API's port.
    livekit_config = yaml.safe_load((DEPLOY_DIR / "livekit.yaml").read_text())
    assert livekit_config["webhook"]["urls"][0].startswith("http://control:8000/")


def test_the_control_plane_believes_forwarded_addresses_of_the_proxy_only(rendered):
    subnet = ipaddress.ip_network(rendered["networks"]["default"]["ipam"]["config"][0]["subnet"])
    gateway = next(subnet.hosts())  # Docker's default gateway: where a host proxy connects from
    control = rendered["services"]["control"]["environment"]
    assert control["VOXLINE_TRUSTED_PROXIES"] == str(gateway)


def test_metrics_need_the_token_and_the_compose_prometheus_sends_it(rendered):
    services = rendered["services"]
    for name in ("control", "worker", "prometheus"):
        assert services[name]["environment"]["VOXLINE_METRICS_TOKEN"] == "dummy-metrics-token"
    worker = services["worker"]
    assert _published(worker) == set()  # the workers' metrics: the compose network only
    prometheus_config = yaml.safe_load((DEPLOY_DIR / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in prometheus_config["scrape_configs"]}
    assert jobs["voxline-worker"]["dns_sd_configs"][0]["port"] == int(
        worker["environment"]["VOXLINE_METRICS_PORT"]
    )
    startup = " ".join(services["prometheus"]["entrypoint"] + services["prometheus"]["command"])
    written = re.search(r"printf '%s' \"\$\$?VOXLINE_METRICS_TOKEN\" > (\S+)", startup)
    assert written, startup
    assert "exec /bin/prometheus" in startup and "--config.file=" in startup
    voxline_jobs = [job for name, job in jobs.items() if name.startswith("voxline")]
    assert len(voxline_jobs) == 3
    for job in voxline_jobs:
        assert job["authorization"] == {"type": "Bearer", "credentials_file": written.group(1)}


def test_livekit_images_are_the_versions_the_tests_follow(rendered):
    services = rendered["services"]
    assert services["livekit"]["image"] == LIVEKIT_SERVER_IMAGE
    assert services["livekit-sip"]["image"] == LIVEKIT_SIP_IMAGE
    env_example = (DEPLOY_DIR / "env.example").read_text()
    assert f"LIVEKIT_SERVER_IMAGE={LIVEKIT_SERVER_IMAGE}\n" in env_example
    assert f"LIVEKIT_SIP_IMAGE={LIVEKIT_SIP_IMAGE}\n" in env_example
    assert not any(image.endswith(":latest") for image in (LIVEKIT_SERVER_IMAGE, LIVEKIT_SIP_IMAGE))
