"""The binaries as containers, the way the chart runs them: an OCI image (built here `FROM
scratch` out of the workspace's binaries and the shared libraries they link, since no
registry is reachable for the Dockerfiles' base images), run by podman with runc under the
rendered securityContext (numeric non-root user, read-only root filesystem, every
capability dropped, no privilege escalation) and the rendered environment. The bridge
answers its probes on the admin port, streams one chat from the stub container, and on
SIGTERM ends an open stream with a final `run_error` and exits 0 within the grace period.

Only what cannot exist outside a cluster is replaced, as in test_binary.py: the containers
share the host's network and listen on loopback free ports, the agent URL is the stub
container's, and the hub is a real redis-server on loopback."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import urllib.request
import uuid
from pathlib import Path

import pytest

from conftest import CHART, binary, component, load_values, render, seconds
from test_binary import RedisServer, call, free_port, resolve_env, wait_http

IMAGE = "localhost/agent-bridge-smoke:test"


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    # runc: the runtime Debian's podman works with here (and the one Kubernetes nodes run).
    return subprocess.run(["podman", "--runtime", "runc", *args], capture_output=True, text=True, check=check, timeout=timeout)


@pytest.fixture(scope="module")
def engine():
    missing = [tool for tool in ("podman", "runc") if shutil.which(tool) is None]
    if missing:
        message = f"{' and '.join(missing)} not installed (scripts/test.sh installs them from Debian)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def shared_libraries(path: Path) -> list[Path]:
    """The shared libraries `path` loads (ldd), the dynamic loader included."""
    out = subprocess.run(["ldd", str(path)], capture_output=True, text=True, check=True).stdout
    libraries = []
    for line in out.splitlines():
        for word in line.split():
            if word.startswith("/"):
                libraries.append(Path(word))
    return libraries


@pytest.fixture(scope="module")
def image(engine, tmp_path_factory):
    """An image holding both binaries (as the Dockerfiles install them) and their libraries."""
    context = tmp_path_factory.mktemp("image")
    root = context / "rootfs"
    for name in ("bridge", "agent-stub"):
        path = binary(name)
        target = root / "usr/local/bin" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        for library in shared_libraries(path):
            copy = root / library.relative_to("/")
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(library.resolve(), copy)
    (context / "Containerfile").write_text("FROM scratch\nCOPY rootfs/ /\n")
    podman("build", "--quiet", "--tag", IMAGE, "--file", str(context / "Containerfile"), str(context))
    yield IMAGE
    podman("rmi", "--force", IMAGE, check=False)


def security_flags(pod_spec: dict, container: dict) -> list[str]:
    """podman flags for the rendered pod and container securityContext; refuses anything it
    cannot express, so a chart change cannot silently weaken what is tested."""
    pod, c = pod_spec["securityContext"], container["securityContext"]
    flags = ["--user", f"{pod['runAsUser']}:{pod['runAsGroup']}"]
    assert pod["runAsNonRoot"] and c["runAsNonRoot"] and pod["runAsUser"] != 0
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}  # podman's default profile
    if c["readOnlyRootFilesystem"]:
        flags.append("--read-only")
    assert c["capabilities"] == {"drop": ["ALL"]}
    flags += ["--cap-drop", "ALL"]
    if c["allowPrivilegeEscalation"] is False:
        flags += ["--security-opt", "no-new-privileges"]
    assert c.get("privileged", False) is False
    return flags


def resource_limits() -> list[str]:
    # podman's own defaults (nofile 1048576, nproc 32768) are more than this sandbox may
    # grant a process (no CAP_SYS_RESOURCE); a pod gets the node's limits, here: ours.
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", "nproc=4096:4096"]


def run(image: str, name: str, entrypoint: str, env: dict[str, str], flags: list[str]) -> str:
    args = ["run", "--detach", "--name", name, "--network", "host", "--entrypoint", entrypoint, *flags, *resource_limits()]
    for key, value in env.items():
        args += ["--env", f"{key}={value}"]
    podman(*args, image)
    return name


def process_status(name: str) -> dict[str, str]:
    """The container's main process as the kernel sees it (/proc/PID/status)."""
    pid = podman("inspect", "--format", "{{.State.Pid}}", name).stdout.strip()
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def sse(response):
    """(event, data) pairs of an SSE response, as they arrive."""
    event, data = None, []
    for raw in response:
        line = raw.decode().rstrip("\n")
        if line == "":
            if event or data:
                yield event, json.loads("\n".join(data)) if data else None
            event, data = None, []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())


def open_stream(base: str, message: str):
    request = urllib.request.Request(
        f"{base}/v1/agents/assistant/chat",
        data=json.dumps({"message": message}).encode(),
        headers={"Content-Type": "application/json", "Accept": "text/event-stream"},
    )
    return urllib.request.urlopen(request, timeout=30)


def test_the_chart_runs_the_images_under_its_security_context(image, tmp_path):
    objects = render(load_values(CHART / "ci" / "demo-values.yaml"))
    bridge_deployment = component(objects, "Deployment", "bridge")
    stub_deployment = component(objects, "Deployment", "agent-stub")
    pod_spec = bridge_deployment["spec"]["template"]["spec"]
    (bridge,) = pod_spec["containers"]
    stub_pod = stub_deployment["spec"]["template"]["spec"]
    (stub,) = stub_pod["containers"]
    suffix = uuid.uuid4().hex[:8]
    names = {"stub": f"smoke-stub-{suffix}", "bridge": f"smoke-bridge-{suffix}"}
    redis = RedisServer(tmp_path, open(tmp_path / "redis.log", "wb"))
    try:
        stub_port = free_port()
        stub_env = resolve_env(stub) | {"AGENT_STUB_LISTEN": f"127.0.0.1:{stub_port}"}
        run(image, names["stub"], "/usr/local/bin/agent-stub", stub_env, security_flags(stub_pod, stub))

        env = resolve_env(bridge)
        api, admin = free_port(), free_port()
        env |= {
            "BRIDGE_LISTEN": f"127.0.0.1:{api}",
            "BRIDGE_ADMIN_LISTEN": f"127.0.0.1:{admin}",
            "BRIDGE_AGENTS": f"assistant=http://127.0.0.1:{stub_port}",
            "BRIDGE_HUB": redis.url,
        }
        run(image, names["bridge"], "/usr/local/bin/bridge", env, security_flags(pod_spec, bridge))

        # Probes, where the Deployment points them (the admin port).
        ports = {p["name"]: p["containerPort"] for p in bridge["ports"]}
        local = {ports["http"]: api, ports["admin"]: admin}
        for probe in ("livenessProbe", "readinessProbe"):
            get = bridge[probe]["httpGet"]
            url = f"http://127.0.0.1:{local[ports[get['port']]]}{get['path']}"
            status = wait_http(url, _Running(names["bridge"]))
            assert status == 200, f"{probe}: {url} answered {status}"

        # The kernel confirms the security context: the rendered user, no capability, no
        # privilege gain.
        for name, (spec, container) in {"bridge": (pod_spec, bridge), "stub": (stub_pod, stub)}.items():
            status = process_status(names[name])
            uid = str(spec["securityContext"]["runAsUser"])
            assert status["Uid"].split() == [uid] * 4, (name, status["Uid"])
            assert status["CapEff"] == status["CapPrm"] == "0000000000000000", (name, status)
            assert status["CapBnd"] == "0000000000000000", (name, status)
            assert status["NoNewPrivs"] == "1", name
            assert podman("inspect", "--format", "{{.HostConfig.ReadonlyRootfs}}", names[name]).stdout.strip() == "true"

        # One streamed chat through both containers.
        base = f"http://127.0.0.1:{api}"
        with open_stream(base, "hello from the container test") as response:
            assert response.status == 200
            kinds = [event for event, _ in sse(response)]
        assert kinds[0] == "run_started" and kinds[-1] == "run_completed", kinds
        assert "text_delta" in kinds
        assert call(f"http://127.0.0.1:{admin}/metrics")[0] == 200

        # The drain: SIGTERM (what the kubelet sends after the preStop sleep) ends the open
        # stream with a final run_error, and the process exits 0 before the SIGKILL that
        # `podman stop` sends after the rendered grace period (as the kubelet would; a
        # killed container exits 137).
        grace = pod_spec["terminationGracePeriodSeconds"]
        assert grace > seconds(env["BRIDGE_DRAIN_TIMEOUT"])
        with open_stream(base, "stub: hang") as response:
            events = sse(response)
            assert next(events)[0] == "run_started"
            # `podman stop` sends SIGTERM, and SIGKILL only after `--time`.
            stopper = subprocess.Popen(["podman", "--runtime", "runc", "stop", "--time", str(grace), names["bridge"]], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            rest = list(events)
        assert rest and rest[-1][0] == "run_error", rest
        assert rest[-1][1]["code"] == "UNAVAILABLE", rest[-1]
        assert stopper.wait(timeout=grace + 60) == 0, stopper.stderr.read()
        exit_code = podman("inspect", "--format", "{{.State.ExitCode}}", names["bridge"]).stdout.strip()
        assert exit_code == "0", podman("logs", names["bridge"], check=False).stdout[-4000:]
    finally:
        for name in names.values():
            logs = podman("logs", name, check=False)
            print(f"--- {name} ---\n{(logs.stdout + logs.stderr)[-3000:]}")
            podman("rm", "--force", "--time", "0", name, check=False)
        redis.stop()


class _Running:
    """What wait_http polls to know the process is still up: the container's state."""

    def __init__(self, name: str):
        self.name = name
        self.returncode = None

    def poll(self):
        state = podman("inspect", "--format", "{{.State.Running}} {{.State.ExitCode}}", self.name, check=False).stdout.split()
        if state and state[0] == "false":
            self.returncode = int(state[1])
            return self.returncode
        return None
