"""The rendered NetworkPolicy, judged by what it lets through (see netpol.py): each feature
the release enables can reach the bridge or be reached by it, and nothing else can."""

from __future__ import annotations

import pytest

from conftest import CHART, NAMESPACE, component, load_values, of_kind, render
from netpol import Cluster, Endpoint, pod_from_workload

# Peers outside the release, where the production scenario says they are.
GATEWAY = Endpoint("gateway-proxy", "10.1.9.1", "gateways", {"app": "gateway"})
PROMETHEUS = Endpoint("prometheus", "10.1.9.2", "monitoring", {"app.kubernetes.io/name": "prometheus"})
STRANGER = Endpoint("stranger", "10.1.9.3", "default", {"app": "curl"})
NEIGHBOUR = Endpoint("neighbour", "10.1.9.4", NAMESPACE, {"app": "other"})
ASSISTANT = Endpoint("assistant-agent", "10.1.8.1", "agents", {"app": "assistant"})
CODER = Endpoint("coder-grpc-proxy", "10.1.8.2", "agents", {"app": "coder"})
COLLECTOR = Endpoint("otel-collector", "10.1.7.1", "observability", {"app": "otel-collector"})
KUBE_DNS = Endpoint("coredns", "10.1.0.10", "kube-system", {"k8s-app": "kube-dns"})
MANAGED_REDIS = Endpoint("managed-redis", "10.20.3.4")
INTERNET = Endpoint("somewhere", "93.184.216.34")


def release(values_file: str, **overrides):
    values = load_values(CHART / "ci" / values_file) | overrides
    objects = render(values)
    pods = {}
    for i, obj in enumerate(o for o in objects if o["kind"] in ("Deployment", "Pod")):
        pods[obj["metadata"]["labels"]["app.kubernetes.io/component"]] = pod_from_workload(obj, f"10.2.0.{i + 1}")
    return Cluster(objects), pods, objects


def test_production_policy_lets_through_what_production_enables():
    cluster, pods, objects = release("production-values.yaml")
    (policy,) = of_kind(objects, "NetworkPolicy")
    bridge, test_pod = pods["bridge"], pods["test"]
    may = cluster.may_connect

    # Clients through the Gateway, and the `helm test` pod, reach the API port only.
    assert may(GATEWAY, bridge, "http")
    assert may(test_pod, bridge, "http")
    assert not may(GATEWAY, bridge, "admin"), "metrics are not exposed through the Gateway"
    # Prometheus (the ServiceMonitor's namespace) scrapes the admin port, and only that.
    assert may(PROMETHEUS, bridge, "admin")
    assert not may(PROMETHEUS, bridge, "http")
    # Nobody else, not even a pod of the same namespace.
    for other in (STRANGER, NEIGHBOUR):
        assert not may(other, bridge, "http") and not may(other, bridge, "admin"), other.name

    # The bridge reaches its agents, its hub, the collector (OTLP/gRPC, 4317) and DNS...
    assert may(bridge, ASSISTANT, 50051)
    assert may(bridge, CODER, 50051)
    assert may(bridge, MANAGED_REDIS, 6379)
    assert may(bridge, COLLECTOR, 4317)
    assert may(bridge, KUBE_DNS, 53, "UDP") and may(bridge, KUBE_DNS, 53, "TCP")
    # ...and nothing else.
    assert not may(bridge, ASSISTANT, 8080)
    assert not may(bridge, COLLECTOR, 4318), "only the OTLP port of otel.endpoint"
    assert not may(bridge, INTERNET, 443)
    assert not may(bridge, INTERNET, 6379), "the hub is where hubTo says"
    assert not may(bridge, STRANGER, 50051)
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]


def test_demo_policy_lets_the_bridge_reach_the_in_release_stub_and_redis():
    cluster, pods, _ = release("demo-values.yaml")
    bridge = pods["bridge"]
    assert cluster.may_connect(bridge, pods["agent-stub"], "grpc")
    assert cluster.may_connect(bridge, pods["redis"], "redis")
    assert not cluster.may_connect(bridge, INTERNET, 443)
    # No `ingressFrom`: any client, the test pod and any scraper reach the bridge.
    for client in (STRANGER, pods["test"]):
        assert cluster.may_connect(client, bridge, "http")
    assert cluster.may_connect(PROMETHEUS, bridge, "admin")


def test_agent_egress_follows_each_agent_url():
    agents = [
        {"name": "svc", "service": {"name": "a", "port": 7000, "namespace": "team-a"}},
        {"name": "short", "url": "http://b:7001"},
        {"name": "fqdn", "url": "dns+https://c.team-c.svc.cluster.local"},
        {"name": "ip", "url": "http://10.9.9.9:7003"},
        {"name": "outside", "url": "https://agents.example.com:8443"},
        {"name": "a2a", "url": "dns+a2a+grpc://d.team-d.svc.cluster.local:7004"},
    ]
    cluster, pods, _ = release(
        "minimal-values.yaml", agents=agents, networkPolicy={"enabled": True, "hubTo": [{"ipBlock": {"cidr": "10.20.0.0/16"}}]}
    )
    bridge = pods["bridge"]
    may = cluster.may_connect
    assert may(bridge, Endpoint("a", "10.3.0.1", "team-a"), 7000)
    assert not may(bridge, Endpoint("a", "10.3.0.1", "team-b"), 7000)
    assert may(bridge, Endpoint("b", "10.3.0.2", NAMESPACE), 7001), "a short name is the release namespace's"
    assert not may(bridge, Endpoint("b", "10.3.0.2", "elsewhere"), 7001)
    assert may(bridge, Endpoint("c", "10.3.0.3", "team-c"), 443), "dns+https defaults to 443"
    assert may(bridge, Endpoint("x", "10.9.9.9"), 7003)
    assert not may(bridge, Endpoint("x", "10.9.9.8"), 7003)
    assert may(bridge, Endpoint("agents.example.com", "203.0.113.7"), 8443)
    assert not may(bridge, Endpoint("agents.example.com", "203.0.113.7"), 8444)
    assert may(bridge, Endpoint("d", "10.3.0.4", "team-d"), 7004)


def test_jwks_and_default_otlp_port_are_let_out():
    cluster, pods, _ = release(
        "minimal-values.yaml",
        networkPolicy={"enabled": True},
        otel={"enabled": True, "endpoint": "http://collector.obs.svc.cluster.local"},
        auth={"jwksUrl": {"value": "https://idp.example.com/.well-known/jwks.json"}, "apiKeys": {"name": "k", "key": "api-keys"}, "ticketSecret": {"name": "t", "key": "ticket-secret"}},
    )
    bridge = pods["bridge"]
    assert cluster.may_connect(bridge, Endpoint("collector", "10.4.0.1", "obs"), 4317), "OTLP/gRPC's port by default"
    assert cluster.may_connect(bridge, Endpoint("idp", "198.51.100.1"), 443)
    assert not cluster.may_connect(bridge, Endpoint("idp", "198.51.100.1"), 80)


def test_prometheus_peers_can_be_given():
    values = load_values(CHART / "ci" / "production-values.yaml")
    values["networkPolicy"]["metricsFrom"] = [{"namespaceSelector": {"matchLabels": {"team": "observability"}}}]
    objects = render(values)
    bridge = pod_from_workload(component(objects, "Deployment", "bridge"), "10.2.0.1")
    cluster = Cluster(objects, namespaces={"metrics": {"team": "observability"}})
    assert cluster.may_connect(Endpoint("prom", "10.1.9.9", "metrics"), bridge, "admin")
    assert not cluster.may_connect(PROMETHEUS, bridge, "admin")


# The evaluator itself, on hand-written policies (so the tests above are not vacuous).
def _policy(spec, namespace="ns"):
    return {"kind": "NetworkPolicy", "metadata": {"name": "p", "namespace": namespace}, "spec": spec}


SERVER = Endpoint("server", "10.0.0.2", "ns", {"app": "server"}, {"web": (8080, "TCP")})
CLIENT = Endpoint("client", "10.0.0.1", "ns", {"app": "client"})
REMOTE = Endpoint("remote", "10.0.1.1", "other", {"app": "client"})


def test_evaluator_without_policies_allows_everything():
    assert Cluster([]).may_connect(CLIENT, SERVER, 1234)


def test_evaluator_default_deny_and_policy_types():
    deny = Cluster([_policy({"podSelector": {}})])
    assert not deny.may_connect(CLIENT, SERVER, 8080), "selected, Ingress, no rule"
    assert Cluster([_policy({"podSelector": {}, "policyTypes": ["Egress"]})]).may_connect(REMOTE, SERVER, 8080)
    assert not Cluster([_policy({"podSelector": {}, "policyTypes": ["Egress"]})]).may_connect(CLIENT, REMOTE, 8080)
    assert Cluster([_policy({"podSelector": {"matchLabels": {"app": "x"}}})]).may_connect(CLIENT, SERVER, 1)


def test_evaluator_peers_and_ports():
    same_ns_pod = Cluster([_policy({"podSelector": {}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}], "ports": [{"port": "web"}]}]})])
    assert same_ns_pod.may_connect(CLIENT, SERVER, 8080)
    assert same_ns_pod.may_connect(CLIENT, SERVER, "web")
    assert not same_ns_pod.may_connect(CLIENT, SERVER, 8081)
    assert not same_ns_pod.may_connect(REMOTE, SERVER, 8080), "podSelector alone: the policy's namespace"
    both = Cluster([_policy({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "other"}}, "podSelector": {"matchLabels": {"app": "nobody"}}}]}]})])
    assert not both.may_connect(REMOTE, SERVER, 8080), "one peer with both selectors: AND"
    either = Cluster([_policy({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "other"}}}, {"podSelector": {"matchLabels": {"app": "nobody"}}}]}]})])
    assert either.may_connect(REMOTE, SERVER, 8080), "two peers: OR"
    blocks = Cluster([_policy({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.0.1.0/24"]}}], "ports": [{"port": 8000, "endPort": 8100, "protocol": "TCP"}]}]})])
    assert blocks.may_connect(CLIENT, SERVER, 8080)
    assert not blocks.may_connect(REMOTE, SERVER, 8080), "excepted"
    assert not blocks.may_connect(CLIENT, SERVER, 8101)
    assert not blocks.may_connect(CLIENT, SERVER, 8080, "UDP")
    expressions = Cluster([_policy({"podSelector": {}, "ingress": [{"from": [{"podSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["client"]}, {"key": "tier", "operator": "DoesNotExist"}]}}]}]})])
    assert expressions.may_connect(CLIENT, SERVER, 1)
    with pytest.raises(AssertionError, match="no port named admin"):
        Cluster([]).may_connect(CLIENT, SERVER, "admin")
    # An address outside the cluster matches ipBlocks only.
    outside = Endpoint("outside", "10.0.0.9")
    assert not Cluster([_policy({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {}}]}]})]).may_connect(outside, SERVER, 8080)
