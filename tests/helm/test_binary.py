"""Chart and binary agree: the real `bridge` (and `agent-stub`) started with exactly the
arguments and environment the rendered Deployments give them answer on the rendered probe
and metrics paths, authenticate as configured, serve the rendered agents through the
rendered hub, and drain within the rendered time on SIGTERM.

Only what cannot exist outside a cluster is replaced: bind addresses become loopback free
ports, agent URLs become a local stub's, the Redis URL (a Secret's, or the in-chart demo
Redis Service) becomes a real `redis-server` started here, and the files projected from
Secrets are written to a temporary directory with test values."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from urllib.parse import urlparse

import pytest

from conftest import CHART, binary, component, env_of, load_values, render, seconds

API_KEY = "0123456789abcdef0123456789abcdef"

# What the Secrets referenced by a scenario would hold in a cluster, by key. The Redis URL is
# the test's own redis-server (filled in per test).
SECRET_FIXTURES = {
    "jwt-secret": "fixture-jwt-secret-0123456789abcdef",
    "api-keys": f"# service:key\nchart-test:{API_KEY}\n",
    "ticket-secret": "fixture-ticket-secret-0123456789abcdef",
    "token": "fixture-agent-token-0123456789",
    "agent-token": "fixture-agent-token-0123456789",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def resolve_env(container: dict, secrets: dict[str, str] | None = None) -> dict[str, str]:
    env = {}
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]] = str(e["value"])
        else:
            ref = e["valueFrom"]["secretKeyRef"]
            env[e["name"]] = (secrets or {})[ref["key"]]
    return env


def materialize_secret_files(pod_spec: dict, container: dict, env: dict[str, str], root) -> dict[str, str]:
    """Writes the files the pod's secret volumes project (test values) under `root` and
    points the environment at them instead of the mount paths. Returns {mounted path: file}."""
    volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
    moved = {}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        assert mount.get("readOnly") is True, mount
        sources = [s["secret"] for s in volume.get("projected", {}).get("sources", []) if "secret" in s]
        if "secret" in volume:
            sources.append(volume["secret"] | {"name": volume["secret"]["secretName"]})
        for source in sources:
            for item in source["items"]:
                local = root / mount["name"] / item["path"]
                local.parent.mkdir(parents=True, exist_ok=True)
                local.write_text(SECRET_FIXTURES[item["key"]])
                moved[f"{mount['mountPath']}/{item['path']}"] = str(local)
    for name, value in env.items():
        if value in moved:
            env[name] = moved[value]
    return moved


class RedisServer:
    """A real redis-server on a free loopback port, for the rendered BRIDGE_HUB."""

    def __init__(self, tmp_path, log):
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
            stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("redis-server did not come up")
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def container_port(container: dict, port) -> int:
    if isinstance(port, int):
        return port
    (p,) = [p for p in container["ports"] if p["name"] == port]
    return p["containerPort"]


def start(path, args, env, log):
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    return subprocess.Popen([str(path), *args], env=base | env, stdout=log, stderr=subprocess.STDOUT)


def wait_for(proc, what: str, attempt, timeout: float = 20.0):
    """What `attempt` returns once it stops failing with a connection error (OSError), tried
    every 0.1 s; fails if `proc` exits first ("exited before `what`"), and re-raises the last
    error after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"process exited with {proc.returncode} before {what}")
        try:
            return attempt()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def wait_http(url: str, proc, timeout: float = 20.0) -> int:
    """The status `url` first answers with, whatever it is."""

    def status() -> int:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    return wait_for(proc, f"answering {url}", status, timeout)


def wait_tcp(port: int, proc, timeout: float = 20.0) -> None:
    """Returns once loopback `port` accepts a connection."""
    wait_for(proc, f"listening on {port}", lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close(), timeout)


def stop(proc, timeout: float) -> float:
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"did not exit within {timeout}s of SIGTERM")
    return time.monotonic() - started


@pytest.fixture
def logs(tmp_path):
    files = []

    def open_log(name):
        f = open(tmp_path / f"{name}.log", "w+b")
        files.append((name, f))
        return f

    yield open_log
    for name, f in files:
        f.seek(0)
        text = f.read().decode(errors="replace")[-4000:]
        print(f"--- {name} log (tail) ---\n{text}")
        f.close()


def call(url: str, body: dict | None = None, headers: dict | None = None):
    """(status, parsed JSON or text) of a request, errors included."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            status, text, kind = r.status, r.read().decode(), r.headers.get("content-type", "")
    except urllib.error.HTTPError as e:
        status, text, kind = e.code, e.read().decode(), e.headers.get("content-type", "")
    return status, (json.loads(text) if "json" in kind else text)


def run_scenario(scenario: str, logs, tmp_path) -> None:
    values = load_values(CHART / "ci" / f"{scenario}.yaml")
    objects = render(values)
    deployment = component(objects, "Deployment", "bridge")
    pod_spec = deployment["spec"]["template"]["spec"]
    (bridge,) = pod_spec["containers"]
    redis = RedisServer(tmp_path, logs("redis"))
    stub_proc = bridge_proc = None
    try:
        env = resolve_env(bridge, {"redis-url": redis.url})
        materialize_secret_files(pod_spec, bridge, env, tmp_path / "secrets")

        # The hub is a real Redis: a Secret's URL, or the in-release demo Redis's Service.
        redis_service = component(objects, "Service", "redis")
        if redis_service is not None:
            assert env["BRIDGE_HUB"] == f"redis://{redis_service['metadata']['name']}:{redis_service['spec']['ports'][0]['port']}/0"
            env["BRIDGE_HUB"] = redis.url
        assert env["BRIDGE_HUB"] == redis.url, "the scenario's hub is Redis"

        # The agent: the rendered in-chart stub when there is one, else a local stub standing
        # for every listed agent, requiring the bridge's agent credential when it has one.
        stub_deployment = component(objects, "Deployment", "agent-stub")
        stub_port = free_port()
        if stub_deployment is not None:
            (stub,) = stub_deployment["spec"]["template"]["spec"]["containers"]
            stub_service = component(objects, "Service", "agent-stub")
            stub_env = resolve_env(stub)
            # Its listen port is its container port, which its Service targets.
            stub_listen_port = int(stub_env["AGENT_STUB_LISTEN"].rsplit(":", 1)[1])
            assert stub_listen_port == container_port(stub, "grpc") == container_port(stub, stub_service["spec"]["ports"][0]["targetPort"])
            assert stub["readinessProbe"]["grpc"]["port"] == stub_listen_port
            stub_env["AGENT_STUB_LISTEN"] = f"127.0.0.1:{stub_port}"
            stub_args = stub.get("args", [])
            stub_host = f"{stub_service['metadata']['name']}.{stub_service['metadata']['namespace']}.svc.cluster.local"
            stub_url = f"dns://{stub_host}:{stub_service['spec']['ports'][0]['port']}"
        else:
            stub_env, stub_args, stub_url = {"AGENT_STUB_LISTEN": f"127.0.0.1:{stub_port}"}, [], None
        if "BRIDGE_AGENT_TOKEN_FILE" in env:
            stub_env["AGENT_STUB_REQUIRE_TOKEN_FILE"] = env["BRIDGE_AGENT_TOKEN_FILE"]
        stub_proc = start(binary("agent-stub"), stub_args, stub_env, logs("agent-stub"))
        wait_tcp(stub_port, stub_proc)

        # The rendered listen address is the container port the probes and Service use.
        host, _, port = env["BRIDGE_LISTEN"].rpartition(":")
        assert host == "0.0.0.0" and int(port) == container_port(bridge, "http")
        local_port = free_port()
        env["BRIDGE_LISTEN"] = f"127.0.0.1:{local_port}"
        # The admin listener (probes, /metrics) is the container's `admin` port.
        admin_host, _, admin_port = env["BRIDGE_ADMIN_LISTEN"].rpartition(":")
        assert admin_host == "0.0.0.0" and int(admin_port) == container_port(bridge, "admin")
        local_admin = free_port()
        env["BRIDGE_ADMIN_LISTEN"] = f"127.0.0.1:{local_admin}"
        local_ports = {int(port): local_port, int(admin_port): local_admin}
        agents = []
        for pair in env["BRIDGE_AGENTS"].split(","):
            name, _, url = pair.partition("=")
            if stub_url is not None:
                assert url == stub_url, f"{name}={url} is the in-chart stub's Service"
            agents.append((name, f"http://127.0.0.1:{stub_port}"))
        env["BRIDGE_AGENTS"] = ",".join(f"{n}={u}" for n, u in agents)

        bridge_proc = start(binary("bridge"), bridge.get("args", []), env, logs("bridge"))
        base = f"http://127.0.0.1:{local_port}"
        for probe in ("livenessProbe", "readinessProbe"):
            get = bridge[probe]["httpGet"]
            probed = local_ports[container_port(bridge, get["port"])]
            status = wait_http(f"http://127.0.0.1:{probed}{get['path']}", bridge_proc)
            assert status == 200, f"{probe} {get['path']} answered {status}"

        # Metrics where the scrape configuration says: the admin port, which the Service
        # names `admin`; the API port (what the HTTPRoute or Ingress exposes) has none.
        annotations = deployment["spec"]["template"]["metadata"].get("annotations") or {}
        monitors = [o for o in objects if o["kind"] == "ServiceMonitor"]
        assert annotations.get("prometheus.io/scrape") == "true", "metrics are on in every scenario"
        scraped = local_ports[int(annotations["prometheus.io/port"])]
        assert scraped == local_admin
        service = component(objects, "Service", "bridge")
        service_ports = {p["name"]: p for p in service["spec"]["ports"]}
        for m in monitors:
            for e in m["spec"]["endpoints"]:
                assert container_port(bridge, service_ports[e["port"]]["targetPort"]) == int(admin_port), e
        paths = {annotations["prometheus.io/path"]} | {e["path"] for m in monitors for e in m["spec"]["endpoints"]}
        admin_base = f"http://127.0.0.1:{local_admin}"
        for path in paths:
            status, text = call(f"{admin_base}{path}")
            assert status == 200 and "bridge_drain_in_progress 0" in text, (path, status, text)
            # Before any stream, every agent's scaling gauge is there, at zero.
            for name, _ in agents:
                assert f'bridge_open_streams{{agent="{name}",transport="sse"}} 0' in text, (name, text)
            status, problem = call(f"{base}{path}")
            assert status == 404, "no metrics on the API port"

        # Every rendered agent answers through the bridge, as a client would use it: with an
        # API key from the mounted file when the scenario has one, anonymously otherwise.
        headers = {"X-API-Key": API_KEY} if "BRIDGE_API_KEYS_FILE" in env else {}
        if headers:
            status, problem = call(f"{base}/v1/agents/{agents[0][0]}/chat", {"message": "no credentials"})
            assert status == 401 and problem["type"].endswith(":unauthenticated"), (status, problem)
        else:
            assert env.get("BRIDGE_ALLOW_ANONYMOUS") == "true"
        for name, _ in agents:
            status, answer = call(f"{base}/v1/agents/{name}/chat", {"message": "hello from the chart test"}, headers)
            assert status == 200, (name, answer)
            assert answer["message"]["role"] == "assistant" and answer["message"]["content"]
        # Readiness is the pod's; each agent's health is its own.
        status, listed = call(f"{base}/v1/agents", headers=headers)
        assert status == 200 and sorted(a["name"] for a in listed["agents"]) == sorted(n for n, _ in agents), listed
        # A thread run goes through the rendered hub (Redis) and can be read back from it.
        status, accepted = call(f"{base}/v1/agents/{agents[0][0]}/threads/chart-test/messages", {"message": "hello"}, headers)
        assert status == 202, accepted

        # The agents going away does not take the pod out of the Service (readiness is the
        # pod's own: every replica shares the agents); each agent's status says it.
        stub_proc.send_signal(signal.SIGTERM)
        stub_proc.wait(timeout=20)
        name = agents[0][0]
        deadline = time.monotonic() + 20
        while (health := call(f"{base}/v1/agents/{name}/status", headers=headers))[1]["status"] == "serving":
            assert time.monotonic() < deadline, health
            time.sleep(0.05)
        assert health[0] == 200 and health[1]["status"] in ("not_serving", "unreachable"), health
        get = bridge["readinessProbe"]["httpGet"]
        status, ready = call(f"http://127.0.0.1:{local_ports[container_port(bridge, get['port'])]}{get['path']}")
        assert (status, ready) == (200, {"status": "ready"}), "an agent's health is not the pod's readiness"

        # SIGTERM (after the preStop sleep, in a cluster) drains within the rendered time,
        # which the grace period covers.
        drain = seconds(env["BRIDGE_DRAIN_TIMEOUT"])
        grace = pod_spec["terminationGracePeriodSeconds"]
        pre_stop = bridge["lifecycle"]["preStop"]["sleep"]["seconds"]
        took = stop(bridge_proc, timeout=drain + 3)
        assert pre_stop + took < grace
        assert bridge_proc.returncode == 0, f"bridge exited with {bridge_proc.returncode}"
        keys = subprocess.run(["redis-cli", "-p", str(redis.port), "--scan"], capture_output=True, text=True, check=True).stdout
        assert keys.strip(), "the thread run went through Redis"
    finally:
        for p in (bridge_proc, stub_proc):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        redis.stop()


def test_demo_chart_runs_the_real_binaries(logs, tmp_path):
    run_scenario("demo-values", logs, tmp_path)


def test_production_chart_runs_the_real_binaries(logs, tmp_path):
    run_scenario("production-values", logs, tmp_path)


def test_environment_names_are_the_binarys():
    """Every BRIDGE_* variable any scenario renders is one `bridge --help` documents."""
    help_text = subprocess.run([str(binary("bridge")), "--help"], capture_output=True, text=True, check=True).stdout
    for scenario in ("minimal-values", "demo-values", "production-values"):
        env = env_of(component(render(load_values(CHART / "ci" / f"{scenario}.yaml")), "Deployment", "bridge")["spec"]["template"]["spec"]["containers"][0])
        for name in env:
            if name.startswith("BRIDGE_"):
                assert f"[env: {name}=" in help_text, f"{scenario}: {name} is not a bridge setting"


def test_schema_accepts_every_agent_url_scheme_the_binary_accepts():
    """The bridge names the URL schemes it accepts when it refuses one; the chart's schema
    accepts each of them (and refuses the one the bridge refused)."""
    import re

    import helm_python as helm

    refused = subprocess.run([str(binary("bridge")), "--agent", "a=bogus://x:1"], capture_output=True, text=True)
    assert refused.returncode == 2, refused
    message = refused.stderr.split("must start with", 1)[1].splitlines()[0]
    schemes = re.findall(r"([a-z0-9+]+)://", message)
    assert {"http", "https", "dns", "dns+https"} <= set(schemes), message
    with helm.Chart.load(CHART) as chart:
        for scheme in schemes:
            values = {"replicaCount": 1, "auth": {"allowAnonymous": True}, "agents": [{"name": "a", "url": f"{scheme}://agent:50051"}]}
            chart.validate_schema(values)
        with pytest.raises(helm.HelmValuesError):
            chart.validate_schema({"agents": [{"name": "a", "url": "bogus://x:1"}]})
