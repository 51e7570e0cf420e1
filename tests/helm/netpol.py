"""A small evaluator of Kubernetes NetworkPolicy semantics over rendered manifests: may
pod X open a connection to pod Y on port P?

It follows the API's documented rules (networking.k8s.io/v1):
- a pod is isolated for ingress (egress) when some policy in its namespace selects it and
  lists `Ingress` (`Egress`) in `policyTypes` (absent: `Ingress`, plus `Egress` when the
  policy has egress rules); an isolated pod accepts only what some selecting policy's rules
  allow, and a connection needs both the source's egress and the destination's ingress;
- a rule without `from`/`to` matches every peer, a rule without `ports` every port; a peer
  is a `podSelector` (pods of the policy's namespace), a `namespaceSelector` (every pod of
  the matching namespaces), both in one peer (pods matching both), or an `ipBlock` (cidr
  minus `except`, matched against the pod's address);
- a named port matches the destination container port of that name and protocol; `endPort`
  extends a numeric port to a range;
- label selectors: `matchLabels` and `matchExpressions` (In, NotIn, Exists, DoesNotExist);
  an empty selector matches everything.
Endpoints outside the cluster have no namespace and are matched by `ipBlock` only.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Endpoint:
    """A pod (with a namespace) or an address outside the cluster (namespace None)."""

    name: str
    ip: str
    namespace: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    # Named container ports: name -> (port, protocol).
    ports: dict[str, tuple[int, str]] = field(default_factory=dict)


def pod_from_workload(obj: dict[str, Any], ip: str) -> Endpoint:
    """The pod a rendered Deployment (or bare Pod) runs, with its labels and named ports."""
    spec = obj["spec"]["template"] if obj["kind"] != "Pod" else obj
    ports = {
        p["name"]: (p["containerPort"], p.get("protocol", "TCP"))
        for c in spec["spec"]["containers"]
        for p in c.get("ports", [])
        if "name" in p
    }
    return Endpoint(
        name=obj["metadata"]["name"],
        ip=ip,
        namespace=obj["metadata"]["namespace"],
        labels=dict(spec["metadata"].get("labels", {})),
        ports=ports,
    )


def selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise ValueError(f"unknown operator {op}")
    return True


class Cluster:
    """Namespaces (with their labels) and the NetworkPolicies in force."""

    def __init__(self, policies: list[dict[str, Any]], namespaces: dict[str, dict[str, str]] | None = None):
        self.policies = [p for p in policies if p["kind"] == "NetworkPolicy"]
        self.namespace_labels = {n: dict(l) for n, l in (namespaces or {}).items()}

    def _ns_labels(self, namespace: str) -> dict[str, str]:
        # Every namespace carries its name as a label (Kubernetes >= 1.21).
        return {"kubernetes.io/metadata.name": namespace} | self.namespace_labels.get(namespace, {})

    def _peer_matches(self, peer: dict[str, Any], policy_ns: str, other: Endpoint) -> bool:
        if "ipBlock" in peer:
            block = peer["ipBlock"]
            address = ipaddress.ip_address(other.ip)
            network = ipaddress.ip_network(block["cidr"])
            if address.version != network.version or address not in network:
                return False
            return not any(
                address in ipaddress.ip_network(e)
                for e in block.get("except", [])
                if ipaddress.ip_network(e).version == address.version
            )
        if other.namespace is None:
            return False
        if "namespaceSelector" in peer:
            if not selects(peer["namespaceSelector"], self._ns_labels(other.namespace)):
                return False
        elif other.namespace != policy_ns:
            return False
        return "podSelector" not in peer or selects(peer["podSelector"], other.labels)

    @staticmethod
    def _port_matches(rule_ports, destination: Endpoint, port: int, protocol: str) -> bool:
        if not rule_ports:
            return True
        for p in rule_ports:
            if p.get("protocol", "TCP") != protocol:
                continue
            wanted = p.get("port")
            if wanted is None:
                return True
            if isinstance(wanted, str):
                if destination.ports.get(wanted) == (port, protocol):
                    return True
            elif wanted <= port <= p.get("endPort", wanted):
                return True
        return False

    def _policy_types(self, policy: dict[str, Any]) -> list[str]:
        spec = policy["spec"]
        if "policyTypes" in spec:
            return spec["policyTypes"]
        return ["Ingress"] + (["Egress"] if "egress" in spec else [])

    def _selecting(self, pod: Endpoint, direction: str):
        for policy in self.policies:
            ns = policy["metadata"].get("namespace")
            if pod.namespace is None or ns != pod.namespace:
                continue
            if direction in self._policy_types(policy) and selects(policy["spec"].get("podSelector"), pod.labels):
                yield policy

    def _allowed(self, pod: Endpoint, other: Endpoint, destination: Endpoint, port: int, protocol: str, direction: str) -> bool:
        selecting = list(self._selecting(pod, direction))
        if not selecting:
            return True  # not isolated
        key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
        for policy in selecting:
            ns = policy["metadata"]["namespace"]
            for rule in policy["spec"].get(key) or []:
                peers = rule.get(peers_key)
                if peers and not any(self._peer_matches(p, ns, other) for p in peers):
                    continue
                if self._port_matches(rule.get("ports"), destination, port, protocol):
                    return True
        return False

    def may_connect(self, source: Endpoint, destination: Endpoint, port: int | str, protocol: str = "TCP") -> bool:
        """May `source` open a connection to `destination` on `port` (a number, or the name
        of one of the destination's container ports)?"""
        if isinstance(port, str):
            assert port in destination.ports, f"{destination.name} has no port named {port}"
            port, protocol = destination.ports[port]
        return self._allowed(source, destination, destination, port, protocol, "Egress") and self._allowed(
            destination, source, destination, port, protocol, "Ingress"
        )
