"""The chart: strict lint, every scenario rendered and schema-validated against several
Kubernetes versions, the deployment policy, and values the schema must refuse."""

from __future__ import annotations

import copy
import json
import re

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from conftest import (
    CHART,
    NAMESPACE,
    SCENARIOS,
    bridge_container,
    component,
    env_of,
    load_values,
    of_kind,
    pod_specs,
    render,
    render_notes,
    seconds,
)

# The chart's floor (Chart.yaml kubeVersion, for the native preStop sleep) and a recent one.
KUBE_VERSIONS = ["1.30.0", "1.34.0"]
# Custom resources kubernetes-validate has no schema for; checked structurally below.
CRD_KINDS = {"ServiceMonitor", "HTTPRoute"}
SECRETISH = ("SECRET", "TOKEN", "PASSWORD", "API_KEY", "CREDENTIAL", "HUB", "REDIS")
# Settings whose names look secret but whose values are not.
NOT_SECRET = {"BRIDGE_HUB_MAX_EVENTS", "BRIDGE_HUB_TTL", "BRIDGE_HUB_CLUSTER_BUCKETS"}


def test_scenarios_exist():
    assert {p.stem for p in SCENARIOS} >= {"minimal-values", "production-values", "demo-values"}


@pytest.mark.parametrize("kube_version", ["v1.30.0", "v1.34.0"])
@pytest.mark.parametrize("values_file", SCENARIOS, ids=lambda p: p.stem)
def test_lint_strict(values_file, kube_version):
    report = helm.lint(CHART, load_values(values_file), strict=True, kube_version=kube_version)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not problems and not report["errors"], report


def test_chart_defaults_need_an_agent():
    with pytest.raises(helm.HelmError, match="no agent configured"):
        render({})


def test_every_object_validates_against_kubernetes(scenario):
    name, objects, _ = scenario
    assert objects
    for obj in objects:
        if obj["kind"] in CRD_KINDS:
            continue
        for version in KUBE_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)


def test_validation_is_not_vacuous():
    (deployment,) = [o for o in render(load_values(CHART / "ci" / "demo-values.yaml")) if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("agent-bridge")]
    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["pathh"] = "/x"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBE_VERSIONS[0], strict=True)


def test_custom_resources_are_well_formed():
    objects = render(load_values(CHART / "ci" / "production-values.yaml"))
    (monitor,) = of_kind(objects, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint == {
        "port": "admin",
        "path": "/metrics",
        "interval": "30s",
        "scrapeTimeout": "10s",
        "relabelings": [{"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"}],
    }
    # It may live in Prometheus's namespace; it still selects the release namespace's Service.
    assert monitor["metadata"]["namespace"] == "monitoring"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    service = component(objects, "Service", "bridge")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()

    route_values = load_values(CHART / "ci" / "minimal-values.yaml") | {
        "httpRoute": {"enabled": True, "parentRefs": [{"name": "public", "namespace": "gateways"}], "hostnames": ["agents.example.com"]}
    }
    (route,) = of_kind(render(route_values), "HTTPRoute")
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    (rule,) = route["spec"]["rules"]
    assert rule["timeouts"] == {"request": "0s"}, "streams must not hit a route timeout"
    assert rule["backendRefs"] == [{"name": service["metadata"]["name"], "port": service["spec"]["ports"][0]["port"]}]


def test_probes_and_metrics_use_the_admin_port(scenario):
    """The API on `http`; probes and /metrics on `admin` (BRIDGE_ADMIN_LISTEN), which the
    Service names for the ServiceMonitor and no HTTPRoute or Ingress ever routes to."""
    _, objects, _ = scenario
    container = bridge_container(objects)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert set(ports) == {"http", "admin"} and ports["http"] != ports["admin"]
    env = env_of(container)
    assert env["BRIDGE_LISTEN"]["value"] == f"0.0.0.0:{ports['http']}"
    assert env["BRIDGE_ADMIN_LISTEN"]["value"] == f"0.0.0.0:{ports['admin']}"
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    annotations = component(objects, "Deployment", "bridge")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(ports["admin"])
    service = component(objects, "Service", "bridge")
    by_name = {p["name"]: p for p in service["spec"]["ports"]}
    assert {n: p["targetPort"] for n, p in by_name.items()} == {"http": "http", "admin": "admin"}
    for monitor in of_kind(objects, "ServiceMonitor"):
        assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["admin"]
    for route in of_kind(objects, "HTTPRoute"):
        for rule in route["spec"]["rules"]:
            assert [b["port"] for b in rule["backendRefs"]] == [by_name["http"]["port"]]
    for ingress in of_kind(objects, "Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                assert path["backend"]["service"]["port"] == {"name": "http"}


def test_admin_port_must_differ_from_the_api_port():
    values = load_values(CHART / "ci" / "minimal-values.yaml") | {"bridge": {"port": 9090, "adminPort": 9090}}
    with pytest.raises(helm.HelmError, match="bridge.adminPort must differ from bridge.port"):
        render(values)


def test_every_pod_is_locked_down(scenario):
    _, objects, _ = scenario
    for obj, spec in pod_specs(objects):
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, where
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert spec.get("automountServiceAccountToken") is False, where
        for c in spec["containers"] + spec.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"], where
            assert sc.get("privileged", False) is False, where
            assert "resources" in c and c["resources"].get("limits", {}).get("memory"), where


def test_pdb_when_more_than_one_replica(scenario):
    name, objects, values = scenario
    deployment = component(objects, "Deployment", "bridge")
    hpa = of_kind(objects, "HorizontalPodAutoscaler")
    min_replicas = hpa[0]["spec"]["minReplicas"] if hpa else deployment["spec"]["replicas"]
    pdbs = of_kind(objects, "PodDisruptionBudget")
    if min_replicas > 1:
        (pdb,) = pdbs
        assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
        assert pdb["spec"]["maxUnavailable"] >= 1
    else:
        assert not pdbs, f"{name}: a PDB over one replica would block node drains"
    if hpa:
        assert "replicas" not in deployment["spec"], "the HPA owns the replica count"


def pre_stop_seconds(container) -> int:
    """The preStop sleep of a container; 0 when it has no hook (never `sleep: {seconds: 0}`)."""
    if "lifecycle" not in container:
        return 0
    seconds_ = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert seconds_ > 0, "a zero sleep is refused before Kubernetes 1.33"
    return seconds_


def test_grace_period_covers_prestop_and_drain(scenario):
    _, objects, _ = scenario
    spec = component(objects, "Deployment", "bridge")["spec"]["template"]["spec"]
    container = bridge_container(objects)
    drain = seconds(env_of(container)["BRIDGE_DRAIN_TIMEOUT"]["value"])
    assert spec["terminationGracePeriodSeconds"] >= pre_stop_seconds(container) + drain + 1


def test_prestop_zero_renders_no_hook():
    """`preStopSleepSeconds: 0` omits the hook: `sleep: {seconds: 0}` is refused by every
    Kubernetes before 1.33, and the chart's floor is 1.30."""
    values = load_values(CHART / "ci" / "minimal-values.yaml") | {"lifecycle": {"preStopSleepSeconds": 0}}
    objects = render(values)
    container = bridge_container(objects)
    assert "lifecycle" not in container
    spec = component(objects, "Deployment", "bridge")["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] == 10 + 5, "drain + margin, no preStop"
    assert "no preStop sleep" in render_notes(values)
    values["lifecycle"]["preStopSleepSeconds"] = 3
    assert bridge_container(render(values))["lifecycle"] == {"preStop": {"sleep": {"seconds": 3}}}


def test_inconsistent_grace_period_fails_rendering():
    values = load_values(CHART / "ci" / "minimal-values.yaml") | {
        "bridge": {"drainTimeout": "30s"},
        "lifecycle": {"preStopSleepSeconds": 10, "terminationGracePeriodSeconds": 20},
    }
    with pytest.raises(helm.HelmError, match=r"terminationGracePeriodSeconds=20 is shorter .* = 45"):
        render(values)
    values["lifecycle"]["terminationGracePeriodSeconds"] = None
    spec = component(render(values), "Deployment", "bridge")["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] == 45


def test_rolling_update_never_drops_ready_pods(scenario):
    _, objects, _ = scenario
    strategy = component(objects, "Deployment", "bridge")["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0


def test_ingress_is_generic():
    """The Ingress carries the class and annotations of the values and nothing of one
    controller's own (ingress-nginx is retired): no default class, no added annotations."""
    values = load_values(CHART / "ci" / "ingress-values.yaml")
    (ingress,) = of_kind(render(values), "Ingress")
    assert ingress["spec"]["ingressClassName"] == "public"
    assert ingress["metadata"]["annotations"] == values["ingress"]["annotations"]
    assert ingress["spec"]["tls"] == values["ingress"]["tls"]
    (path,) = ingress["spec"]["rules"][0]["http"]["paths"]
    assert path["path"] == "/v1/agents" and path["backend"]["service"]["port"] == {"name": "http"}

    bare = copy.deepcopy(values)
    del bare["ingress"]["className"], bare["ingress"]["annotations"]
    (ingress,) = of_kind(render(bare), "Ingress")
    assert "ingressClassName" not in ingress["spec"], "the cluster's default class"
    assert "annotations" not in ingress["metadata"]


def test_gateway_api_is_the_production_path():
    """The production scenario is exposed through an HTTPRoute attached to a Gateway, with no
    request timeout (streams are long) and no Ingress."""
    objects = render(load_values(CHART / "ci" / "production-values.yaml"))
    assert not of_kind(objects, "Ingress")
    (route,) = of_kind(objects, "HTTPRoute")
    assert route["spec"]["parentRefs"] == [{"name": "public", "namespace": "gateways", "sectionName": "https"}]
    assert route["spec"]["hostnames"] == ["agents.example.com"]
    (rule,) = route["spec"]["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/v1/agents"}}]
    assert rule["timeouts"] == {"request": "0s"}
    # values.yaml presents the HTTPRoute first, as the recommended exposure.
    text = (CHART / "values.yaml").read_text()
    assert text.index("\nhttpRoute:") < text.index("\ningress:")


def test_service_monitor_scrape_timeout_within_interval():
    values = load_values(CHART / "ci" / "production-values.yaml")
    values["metrics"]["serviceMonitor"]["scrapeTimeout"] = "1m"
    with pytest.raises(helm.HelmError, match=r"scrapeTimeout \(1m\) must not exceed .*interval \(30s\)"):
        render(values)
    values["metrics"]["serviceMonitor"]["scrapeTimeout"] = ""
    (monitor,) = of_kind(render(values), "ServiceMonitor")
    assert "scrapeTimeout" not in monitor["spec"]["endpoints"][0]


def is_fully_qualified(image: str) -> bool:
    """Does the reference name its registry (`host.tld/...`, `host:port/...`, `localhost/...`)?
    A short name (`redis`, `busybox:1.36`) depends on a default registry some runtimes lack."""
    first, _, rest = image.partition("/")
    return bool(rest) and ("." in first or ":" in first or first == "localhost")


def test_every_image_is_fully_qualified_and_pulls_with_the_secrets(scenario):
    name, objects, values = scenario
    secrets = values.get("imagePullSecrets", [])
    for obj, spec in pod_specs(objects):
        where = f"{name}: {obj['kind']}/{obj['metadata']['name']}"
        for c in spec["containers"] + spec.get("initContainers", []):
            assert is_fully_qualified(c["image"]), f"{where}: {c['image']}"
            assert c.get("imagePullPolicy"), where
        assert spec.get("imagePullSecrets", []) == secrets, where


def test_images_pull_by_digest():
    digest = "sha256:" + "ab" * 32
    values = load_values(CHART / "ci" / "demo-values.yaml") | {
        "imagePullSecrets": [{"name": "regcred"}],
        "image": {"repository": "registry.example.com/bridge", "tag": "1.2.3", "digest": digest},
        "redis": {"enabled": True, "image": {"repository": "docker.io/library/redis", "tag": "7.4-alpine", "digest": digest}},
        "tests": {"image": {"repository": "docker.io/library/busybox", "tag": "1.36", "digest": digest}},
    }
    objects = render(values)
    images = {o["metadata"]["labels"]["app.kubernetes.io/component"]: s["containers"][0]["image"] for o, s in pod_specs(objects)}
    assert images["bridge"] == f"registry.example.com/bridge:1.2.3@{digest}"
    assert images["redis"] == f"docker.io/library/redis:7.4-alpine@{digest}"
    assert images["test"] == f"docker.io/library/busybox:1.36@{digest}"
    assert images["agent-stub"] == "ghcr.io/agent-bridge/agent-stub:0.1.0", "no digest: the tag alone"
    for obj, spec in pod_specs(objects):
        assert spec["imagePullSecrets"] == [{"name": "regcred"}], obj["metadata"]["name"]
    (bridge,) = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["labels"]["app.kubernetes.io/component"] == "bridge"]
    for version in KUBE_VERSIONS:
        kubernetes_validate.validate(bridge, version, strict=True)


def test_schema_accepts_every_advertised_agent_url():
    urls = [
        "http://agent:50051",
        "https://agent.example.com:443",
        "dns://agent.agents.svc.cluster.local:50051",
        "dns+https://agent.agents.svc.cluster.local:443",
        # A2A agents over gRPC, plain, TLS and spread over a name's addresses.
        "a2a+grpc://agent:50051",
        "a2a+grpcs://agent.example.com:443",
        "dns+a2a+grpc://agent.agents.svc.cluster.local:50051",
        "dns+a2a+grpcs://agent.agents.svc.cluster.local:443",
    ]
    with helm.Chart.load(CHART) as chart:
        for url in urls:
            values = {"replicaCount": 1, "auth": {"allowAnonymous": True}, "agents": [{"name": "a", "url": url}]}
            chart.validate_schema(values)
            env = env_of(bridge_container(render(values)))
            assert env["BRIDGE_AGENTS"]["value"] == f"a={url}"


def test_notes_match_the_exposure():
    """NOTES.txt gives one URL that works for the exposure rendered: the HTTPRoute's or the
    Ingress's host, or 127.0.0.1 after the port-forward it prints."""
    route = render_notes(load_values(CHART / "ci" / "production-values.yaml"))
    assert "curl -N https://agents.example.com/v1/agents/<agent>/chat" in route
    assert "gateways/public" in route
    assert "127.0.0.1" not in route and "port-forward" not in route

    ingress = render_notes(load_values(CHART / "ci" / "ingress-values.yaml"))
    assert "curl -N https://agents.example.com/v1/agents/<agent>/chat" in ingress
    assert "127.0.0.1" not in ingress and "port-forward" not in ingress
    plain = load_values(CHART / "ci" / "ingress-values.yaml")
    plain["ingress"]["tls"] = []
    assert "curl -N http://agents.example.com/v1/agents/" in render_notes(plain)

    local = render_notes(load_values(CHART / "ci" / "demo-values.yaml"))
    forward = local.index("port-forward svc/ab-agent-bridge 8080:80")
    assert local.index("curl -N http://127.0.0.1:8080/v1/agents/assistant/chat") > forward


def test_secrets_only_by_reference(scenario):
    """No secret is ever a literal: not in env, not in a ConfigMap, no Secret rendered; secret
    files are projected read-only from existing Secrets."""
    _, objects, _ = scenario
    assert not of_kind(objects, "Secret")
    for cm in of_kind(objects, "ConfigMap"):
        text = json.dumps(cm.get("data", {}))
        assert "password" not in text.lower() and "@" not in text, cm["metadata"]["name"]
    for obj, spec in pod_specs(objects):
        secret_volumes = set()
        for v in spec.get("volumes", []):
            if "secret" in v or any("secret" in s for s in v.get("projected", {}).get("sources", [])):
                secret_volumes.add(v["name"])
        for c in spec["containers"]:
            secret_dirs = [m["mountPath"] for m in c.get("volumeMounts", []) if m["name"] in secret_volumes]
            assert all(m.get("readOnly") for m in c.get("volumeMounts", []) if m["name"] in secret_volumes), c["name"]
            for e in c.get("env", []):
                if e["name"] in NOT_SECRET or not any(s in e["name"] for s in SECRETISH):
                    continue
                if e["name"].endswith("_FILE"):
                    assert any(e["value"].startswith(d + "/") for d in secret_dirs), e
                elif "value" in e:
                    # Only the memory hub or the unauthenticated in-release demo Redis may be
                    # a literal.
                    assert e["name"] == "BRIDGE_HUB" and "@" not in e["value"], e
                    assert e["value"] == "memory" or component(objects, "Service", "redis"), e
                else:
                    assert set(e["valueFrom"]) == {"secretKeyRef"}, e


def test_production_takes_every_secret_by_reference():
    objects = render(load_values(CHART / "ci" / "production-values.yaml"))
    container = bridge_container(objects)
    env = env_of(container)
    # The hub is Redis from a Secret; the ticket key is shared by every replica, from a Secret.
    assert env["BRIDGE_HUB"]["valueFrom"]["secretKeyRef"] == {"name": "agent-bridge-redis", "key": "redis-url"}
    assert "BRIDGE_ALLOW_ANONYMOUS" not in env
    files = {
        "BRIDGE_JWT_SECRET_FILE": ("agent-bridge-auth", "jwt-secret"),
        "BRIDGE_API_KEYS_FILE": ("agent-bridge-api-keys", "api-keys"),
        "BRIDGE_TICKET_SECRET_FILE": ("agent-bridge-auth", "ticket-secret"),
        "BRIDGE_AGENT_TOKEN_FILE": ("agent-bridge-agent-credential", "token"),
    }
    spec = component(objects, "Deployment", "bridge")["spec"]["template"]["spec"]
    (volume,) = spec["volumes"]
    (mount,) = container["volumeMounts"]
    assert mount == {"name": volume["name"], "mountPath": "/etc/agent-bridge/secrets", "readOnly": True}
    projected = {item["path"]: (src["secret"]["name"], item["key"]) for src in volume["projected"]["sources"] for item in src["secret"]["items"]}
    for name, ref in files.items():
        path = env[name]["value"]
        assert path.startswith("/etc/agent-bridge/secrets/"), path
        assert projected[path.rsplit("/", 1)[1]] == ref, name
    assert env["BRIDGE_JWT_ISSUERS"]["value"] == "https://idp.example.com/"
    assert env["BRIDGE_JWT_AUDIENCES"]["value"] == "agent-bridge"
    assert env["BRIDGE_CORS_ORIGINS"]["value"] == "https://app.example.com"
    assert env["BRIDGE_TRUSTED_PROXIES"]["value"] == "10.0.0.0/8"
    assert env["BRIDGE_RATE_LIMIT_CHAT"]["value"] == "120/1m"
    assert env["BRIDGE_LOG_FORMAT"]["value"] == "json"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"].startswith("http://otel-collector")
    assert "deployment.environment=production" in env["OTEL_RESOURCE_ATTRIBUTES"]["value"]
    (hpa,) = of_kind(objects, "HorizontalPodAutoscaler")
    assert {m["type"] for m in hpa["spec"]["metrics"]} == {"Resource", "Pods"}
    (pods,) = [m for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    assert pods["pods"]["metric"]["name"] == "bridge_open_streams"
    assert of_kind(objects, "NetworkPolicy") and of_kind(objects, "ServiceMonitor")


def test_chart_defaults_are_secure():
    """Without a word about it, nothing is anonymous, logs are JSON, metrics are scraped and
    nothing is exported; a demo must ask for anonymous callers."""
    minimal = render(load_values(CHART / "ci" / "minimal-values.yaml"))
    env = env_of(bridge_container(minimal))
    assert "BRIDGE_ALLOW_ANONYMOUS" not in env
    assert env["BRIDGE_LOG_FORMAT"]["value"] == "json"
    assert not [n for n in env if n.startswith("OTEL_")]
    annotations = component(minimal, "Deployment", "bridge")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] == "/metrics"
    demo = env_of(bridge_container(render(load_values(CHART / "ci" / "demo-values.yaml"))))
    assert demo["BRIDGE_ALLOW_ANONYMOUS"]["value"] == "true"


def test_rendering_refuses_what_the_bridge_or_a_rollout_cannot_work_with():
    agents = {"agents": [{"name": "assistant", "url": "http://agent:50051"}]}
    with pytest.raises(helm.HelmError, match="no way to authenticate clients"):
        render(agents | {"replicaCount": 1})
    one = agents | {"replicaCount": 1, "auth": {"apiKeys": {"name": "keys", "key": "api-keys"}}}
    assert env_of(bridge_container(render(one)))["BRIDGE_HUB"]["value"] == "memory"
    # More than one replica: threads must resume anywhere, so the hub must be shared...
    for scale in ({"replicaCount": 2}, {"autoscaling": {"enabled": True}}):
        with pytest.raises(helm.HelmError, match="needs a shared Redis hub"):
            render(one | scale)
    # ...and a ticket issued by one pod must be accepted by another.
    shared = one | {"replicaCount": 3, "hub": {"existingSecret": {"name": "redis", "key": "url"}}}
    with pytest.raises(helm.HelmError, match="auth.ticketSecret.name"):
        render(shared)
    shared["auth"] = shared["auth"] | {"ticketSecret": {"name": "tickets", "key": "ticket-secret"}}
    env = env_of(bridge_container(render(shared)))
    assert env["BRIDGE_HUB"]["valueFrom"]["secretKeyRef"] == {"name": "redis", "key": "url"}
    assert env["BRIDGE_TICKET_SECRET_FILE"]["value"] == "/etc/agent-bridge/secrets/ticket-secret"
    # The in-release demo Redis is a shared hub too.
    demo = render(shared | {"hub": {}, "redis": {"enabled": True}})
    assert env_of(bridge_container(demo))["BRIDGE_HUB"]["value"] == "redis://ab-agent-bridge-redis:6379/0"


def test_agents_render_into_bridge_agents():
    values = {"replicaCount": 1, "auth": {"allowAnonymous": True}, "agents": [
        {"name": "assistant", "service": {"name": "assistant-agent", "port": 50051}},
        {"name": "coder", "url": "https://coder.example.com:443"},
    ]}
    env = env_of(bridge_container(render(values)))
    assert env["BRIDGE_AGENTS"]["value"] == (
        f"assistant=dns://assistant-agent.{NAMESPACE}.svc.cluster.local:50051,coder=https://coder.example.com:443"
    )
    values["agents"].append({"name": "coder", "url": "http://x:1"})
    with pytest.raises(helm.HelmError, match="listed twice"):
        render(values)


def test_demo_redis_and_hub():
    objects = render(load_values(CHART / "ci" / "demo-values.yaml"))
    assert component(objects, "Deployment", "redis") and component(objects, "Service", "redis")
    assert env_of(bridge_container(objects))["BRIDGE_HUB"]["value"] == "redis://ab-agent-bridge-redis:6379/0"
    for version in KUBE_VERSIONS:
        for obj in objects:
            kubernetes_validate.validate(obj, version, strict=True)


def test_helm_test_hook_checks_readiness(scenario):
    _, objects, _ = scenario
    (pod,) = of_kind(objects, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    service = component(objects, "Service", "bridge")
    url = pod["spec"]["containers"][0]["command"][-1]
    assert url == f"http://{service['metadata']['name']}.{NAMESPACE}.svc.cluster.local:{service['spec']['ports'][0]['port']}/readyz"


def test_topology_spread_and_notes():
    values = load_values(CHART / "ci" / "minimal-values.yaml")
    spec = component(render(values), "Deployment", "bridge")["spec"]["template"]["spec"]
    keys = {t["topologyKey"] for t in spec["topologySpreadConstraints"]}
    assert keys == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    notes = render_notes(values)
    assert "port-forward svc/ab-agent-bridge" in notes and "/v1/agents/" in notes


BAD_VALUES = {
    "typo at the top": {"replicaCont": 3},
    "typo in bridge": {"bridge": {"drainTimout": "10s"}},
    "typo in ingress": {"ingress": {"enable": True}},
    "literal redis url": {"hub": {"url": "redis://:hunter2@redis:6379"}},
    "literal api key": {"auth": {"apiKeys": {"name": "keys", "key": "api-keys", "value": "k"}}},
    "old auth switch": {"auth": {"enabled": True}},
    "rate limit form": {"auth": {"rateLimit": {"chat": "60 per minute"}}},
    "cors wildcard": {"auth": {"corsOrigins": ["*"]}},
    "anonymous as text": {"auth": {"allowAnonymous": "yes"}},
    "run lease without unit": {"hub": {"runLease": "10"}},
    "replicas as text": {"replicaCount": "two"},
    "duration as number": {"bridge": {"heartbeat": 15}},
    "duration without unit": {"bridge": {"drainTimeout": "10"}},
    "port out of range": {"bridge": {"port": 70000}},
    "log format": {"bridge": {"logFormat": "xml"}},
    "agent without url or service": {"agents": [{"name": "a"}]},
    "agent name with a space": {"agents": [{"name": "my agent", "url": "http://a:1"}]},
    "agent url scheme": {"agents": [{"name": "a", "url": "grpc://a:1"}]},
    "boolean as text": {"ingress": {"enabled": "yes"}},
    "short image name": {"image": {"repository": "bridge"}},
    "short redis image": {"redis": {"image": {"repository": "redis", "tag": "7"}}},
    "short test image": {"tests": {"image": {"repository": "busybox", "tag": "1.36"}}},
    "digest without algorithm": {"image": {"repository": "ghcr.io/a/b", "digest": "4f53cd"}},
    "negative preStop": {"lifecycle": {"preStopSleepSeconds": -1}},
    "nginx-only switch": {"ingress": {"nginxSSEAnnotations": True}},
    "scrape timeout form": {"metrics": {"serviceMonitor": {"scrapeTimeout": "10"}}},
}


@pytest.mark.parametrize("bad", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_schema_rejects(bad):
    values = {"agents": [{"name": "assistant", "url": "http://agent:50051"}]}
    for key, value in bad.items():
        values[key] = value
    with helm.Chart.load(CHART) as chart:
        with pytest.raises(helm.HelmValuesError):
            chart.validate_schema(values)
        with pytest.raises(helm.HelmValuesError):
            chart.render(values, name="ab", namespace=NAMESPACE)


def _has_doc_comment(lines, i):
    j = i - 1
    while j >= 0 and lines[j].strip().startswith("#") and not lines[j].strip().startswith("# --"):
        j -= 1
    return j >= 0 and lines[j].strip().startswith("# --")


def test_values_file_is_fully_documented():
    """Every leaf of values.yaml has a `# --` comment, on itself or on an enclosing key (a
    documented default object such as `resources`)."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    undocumented = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "-")) or ":" not in stripped:
            continue
        key, _, rest = stripped.partition(":")
        if rest.strip() == "":
            continue  # a block: documented through its leaves
        documented = _has_doc_comment(lines, i)
        indent = len(line) - len(line.lstrip())
        for k in range(i - 1, -1, -1):
            if documented or indent == 0:
                break
            pl = lines[k]
            if pl.strip() and not pl.strip().startswith("#") and len(pl) - len(pl.lstrip()) < indent:
                indent = len(pl) - len(pl.lstrip())
                documented = _has_doc_comment(lines, k)
        if not documented:
            undocumented.append(f"line {i + 1}: {key}")
    assert not undocumented, undocumented
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert set(yaml.safe_load((CHART / "values.yaml").read_text())) <= set(schema["properties"])


@pytest.mark.parametrize("package, port_key", [("bridge", "bridge"), ("agent-stub", "agentStub")])
def test_dockerfiles_match_the_chart(package, port_key):
    """The images build the workspace's own binary, run as the chart's numeric user and
    listen where the chart expects (the images themselves are not built here)."""
    from conftest import REPO

    text = (REPO / "Dockerfile").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    build = re.search(r"cargo build --release --locked((?: -p \S+)+)", text)
    assert build and package in build.group(1).split(), text
    stage = dockerfile_stage(text, package)
    assert f"COPY --from=build /usr/local/bin/{package} /usr/local/bin/{package}" in stage
    uid = values["podSecurityContext"]["runAsUser"]
    assert f"USER {uid}:{uid}" in stage
    assert f"EXPOSE {values[port_key]['port']}" in stage
    assert f'ENTRYPOINT ["/usr/local/bin/{package}"]' in stage


def dockerfile_stage(text: str, name: str) -> str:
    """The lines of the Dockerfile's stage `name`, from its FROM to the next FROM."""
    stage = re.search(rf"^FROM \S+ AS {re.escape(name)}\n(.*?)(?=^FROM |\Z)", text, re.M | re.S)
    assert stage, f"no stage {name}"
    return stage.group(1)


def dockerfile_bases(text: str) -> list[str]:
    """The base image of every FROM, with `ARG` defaults substituted and stage names left out."""
    import re

    args, stages, bases = {}, set(), []
    for line in text.splitlines():
        if m := re.fullmatch(r"ARG (\w+)=(\S+)", line.strip()):
            args[m.group(1)] = m.group(2)
        elif m := re.fullmatch(r"FROM (\S+)(?: AS (\S+))?", line.strip()):
            base = re.sub(r"\$\{(\w+)\}", lambda a: args[a.group(1)], m.group(1))
            if base not in stages:
                bases.append(base)
            if m.group(2):
                stages.add(m.group(2))
    return bases


def test_dockerfile_builds_without_a_default_registry():
    """Every base image is fully qualified (an OCI builder with no default registry resolves
    it), can be pinned by digest through a build argument, and the build stage's Debian
    release is the runtimes' (the binaries link against its glibc)."""
    from conftest import REPO

    text = (REPO / "Dockerfile").read_text()
    build, runtime = dict.fromkeys(dockerfile_bases(text))
    assert is_fully_qualified(build) and is_fully_qualified(runtime), (build, runtime)
    assert build.startswith("docker.io/library/rust:") and build.endswith("-bookworm"), build
    assert runtime.startswith("gcr.io/distroless/cc-debian12:"), runtime
    assert "ARG BUILD_IMAGE=" in text and "ARG RUNTIME_IMAGE=" in text
    assert "@sha256:<digest>" in text, "the comment shows how to pin by digest"


def test_release_profile_strips_symbols():
    import tomllib

    from conftest import REPO

    profile = tomllib.loads((REPO / "Cargo.toml").read_text())["profile"]["release"]
    assert profile.get("strip") in (True, "symbols"), profile
    assert profile.get("debug", 0) in (0, False, "none"), profile
