"""The shipped NetworkPolicies, read as data: test and build pods reach the internet's registries
and package indexes and nothing of the cluster. The metadata rule is checked here, in the
policy's content, never by calling that address."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
POLICY = yaml.safe_load((ROOT / "policies" / "networkpolicies.yaml").read_text())


def allowed_networks() -> list[tuple[ipaddress.IPv4Network, list[ipaddress.IPv4Network]]]:
    found = []
    for rule in POLICY["spec"]["egress"]:
        for peer in rule["to"]:
            if "ipBlock" in peer:
                block = peer["ipBlock"]
                found.append((ipaddress.ip_network(block["cidr"]),
                              [ipaddress.ip_network(c) for c in block.get("except", [])]))  # fmt: skip
    return found


def reachable(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip in net and not any(ip in ex for ex in excepts) for net, excepts in allowed_networks())


def test_it_selects_the_test_and_build_pods_for_ingress_and_egress():
    spec = POLICY["spec"]
    assert spec["podSelector"] == {"matchExpressions": [
        {"key": "tekton.dev/task", "operator": "In", "values": ["druppie-test", "druppie-build"]}]}  # fmt: skip
    assert spec["policyTypes"] == ["Ingress", "Egress"] and spec["ingress"] == []


def test_the_cloud_metadata_address_and_every_private_range_are_out_of_reach():
    for address in ("169.254.169.254", "10.96.0.1", "10.244.1.1", "172.20.0.10", "192.168.1.1", "100.64.0.1",
                    "127.0.0.1"):  # fmt: skip
        assert not reachable(address), address
    for address in ("140.82.112.3", "151.101.0.223", "8.8.8.8"):  # a forge, a package index, anything public
        assert reachable(address), address


def test_only_web_ports_outside_and_dns_inside():
    by_kind = {("ipBlock" in rule["to"][0]): rule for rule in POLICY["spec"]["egress"]}
    assert {p["port"] for p in by_kind[True]["ports"]} == {80, 443}
    dns = by_kind[False]
    assert dns["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    assert {p["port"] for p in dns["ports"]} <= {53, 1053}
