"""Chart and binary agree: the real `bridge` (and `agent-stub`) started with exactly the
arguments and environment the rendered Deployments give them answer on the rendered probe
paths, serve the rendered agent, and drain within the rendered time on SIGTERM.

Only what cannot exist outside a cluster is replaced: bind addresses become loopback free
ports, the in-cluster stub URL becomes the local stub's, secretKeyRef values come from
fixtures."""

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

# What the Secrets referenced by a scenario would hold in a cluster.
SECRET_FIXTURES = {
    ("agent-bridge-auth", "jwt-secret"): "fixture-jwt-secret-0123456789abcdef",
    ("agent-bridge-redis", "redis-url"): "redis://127.0.0.1:6379/0",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def resolve_env(container: dict) -> dict[str, str]:
    env = {}
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]] = str(e["value"])
        else:
            ref = e["valueFrom"]["secretKeyRef"]
            env[e["name"]] = SECRET_FIXTURES[(ref["name"], ref["key"])]
    return env


def container_port(container: dict, port) -> int:
    if isinstance(port, int):
        return port
    (p,) = [p for p in container["ports"] if p["name"] == port]
    return p["containerPort"]


def start(path, args, env, log):
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    return subprocess.Popen([str(path), *args], env=base | env, stdout=log, stderr=subprocess.STDOUT)


def wait_http(url: str, proc, timeout: float = 20.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"process exited with {proc.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def wait_tcp(port: int, proc, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


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


def test_demo_chart_runs_the_real_binaries(logs):
    objects = render(load_values(CHART / "ci" / "demo-values.yaml"))
    deployment = component(objects, "Deployment", "bridge")
    (bridge,) = deployment["spec"]["template"]["spec"]["containers"]
    stub_deployment = component(objects, "Deployment", "agent-stub")
    (stub,) = stub_deployment["spec"]["template"]["spec"]["containers"]
    stub_service = component(objects, "Service", "agent-stub")

    # The stub, as rendered: its listen port is its container port, which its Service targets.
    stub_env = resolve_env(stub)
    stub_listen_port = int(stub_env["AGENT_STUB_LISTEN"].rsplit(":", 1)[1])
    assert stub_listen_port == container_port(stub, "grpc") == container_port(stub, stub_service["spec"]["ports"][0]["targetPort"])
    assert stub["readinessProbe"]["grpc"]["port"] == stub_listen_port
    stub_port = free_port()
    stub_env["AGENT_STUB_LISTEN"] = f"127.0.0.1:{stub_port}"
    stub_proc = start(binary("agent-stub"), stub.get("args", []), stub_env, logs("agent-stub"))
    bridge_proc = None
    try:
        wait_tcp(stub_port, stub_proc)

        env = resolve_env(bridge)
        # The rendered listen address is the container port the probes and Service use.
        host, _, port = env["BRIDGE_LISTEN"].rpartition(":")
        assert host == "0.0.0.0" and int(port) == container_port(bridge, "http")
        local_port = free_port()
        env["BRIDGE_LISTEN"] = f"127.0.0.1:{local_port}"

        # The in-cluster stub URL points at the stub Service's port; swap in the local stub.
        stub_host = f"{stub_service['metadata']['name']}.{stub_service['metadata']['namespace']}.svc.cluster.local"
        agents = []
        for pair in env["BRIDGE_AGENTS"].split(","):
            name, _, url = pair.partition("=")
            parsed = urlparse(url)
            if parsed.hostname == stub_host:
                assert parsed.port == stub_service["spec"]["ports"][0]["port"]
                url = f"http://127.0.0.1:{stub_port}"
            agents.append(f"{name}={url}")
        env["BRIDGE_AGENTS"] = ",".join(agents)
        agent_name = agents[0].split("=")[0]

        bridge_proc = start(binary("bridge"), bridge.get("args", []), env, logs("bridge"))
        for probe in ("livenessProbe", "readinessProbe"):
            get = bridge[probe]["httpGet"]
            assert container_port(bridge, get["port"]) == int(port)
            status = wait_http(f"http://127.0.0.1:{local_port}{get['path']}", bridge_proc)
            assert status == 200, f"{probe} {get['path']} answered {status}"

        # The configured agent is reachable through the bridge, as a client would use it.
        request = urllib.request.Request(
            f"http://127.0.0.1:{local_port}/v1/agents/{agent_name}/chat",
            data=json.dumps({"message": "hello from the chart test"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as r:
            answer = json.load(r)
        assert answer["message"]["role"] == "assistant" and answer["message"]["content"]

        # SIGTERM (after the preStop sleep, in a cluster) drains within the rendered time,
        # which the grace period covers.
        drain = seconds(env["BRIDGE_DRAIN_TIMEOUT"])
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        pre_stop = bridge["lifecycle"]["preStop"]["sleep"]["seconds"]
        took = stop(bridge_proc, timeout=drain + 3)
        assert pre_stop + took < grace
        assert bridge_proc.returncode == 0, f"bridge exited with {bridge_proc.returncode}"
    finally:
        for p in (bridge_proc, stub_proc):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()


def test_environment_names_are_the_binarys():
    """Every BRIDGE_* variable the minimal and demo scenarios render is one `bridge --help`
    documents (future settings stay off until their flags exist)."""
    help_text = subprocess.run([str(binary("bridge")), "--help"], capture_output=True, text=True, check=True).stdout
    for scenario in ("minimal-values", "demo-values"):
        env = env_of(component(render(load_values(CHART / "ci" / f"{scenario}.yaml")), "Deployment", "bridge")["spec"]["template"]["spec"]["containers"][0])
        for name in env:
            if name.startswith("BRIDGE_"):
                assert f"[env: {name}=" in help_text, f"{scenario}: {name} is not a bridge setting"
