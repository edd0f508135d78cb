"""Real nodes' dumps, round 3 (helper b): ``data/real/`` files whose sources its README names,
traced standalone through the CLI (``trace --dump``, no cluster file). Each test's docstring
derives the expected outcomes by reading the dump; line numbers are the dump's own.

The weave node is the case of weave-npc: a pod's traffic crosses ``-i weave`` / ``-o weave``
rules and namespace ipsets that no ``ipset save`` gives. The stand-in node knows neither its
devices nor its pods, so those rules fork, and each question is asked once per branch (weave-npc
tests every egress set twice around a MARK: test_one_question_once.py)."""

# ruff: noqa: E501  (dump lines are quoted whole)

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REAL = Path(__file__).parent / "data" / "real"
WEAVE = REAL / "kubeadm-v1.11-weave.iptables-save"
K3S_NFT = REAL / "k3s-pi-kube-proxy-nftables.nft"
PI_NODE = "10.34.4.246"  # k8s-slave-1-raspberrypi-4: the nodeport-ips set's one element
WEAVE_NODE = "192.168.1.241"  # the apiserver endpoint (line 36): the master this dump is from


def trace(dump: Path, *args: str) -> dict[str, Any]:
    """``sourceip trace --dump DUMP ARGS -o json``, parsed; fails the test on a non-zero exit."""
    env = {**os.environ, "COLUMNS": "400"}
    res = subprocess.run([sys.executable, "-m", "sourceip", "trace", "--dump", str(dump),
                          *args, "-o", "json"], capture_output=True, text=True, timeout=120,
                         env=env)
    assert res.returncode == 0, res.stderr
    doc: dict[str, Any] = json.loads(res.stdout)
    return doc


def lines_of(o: dict[str, Any]) -> list[int]:
    """The dump lines an outcome's steps name, in order."""
    return [s["loc"]["line"] for h in o["hops"] for s in h["steps"] if s["loc"]]


def assumed(o: dict[str, Any]) -> dict[int, bool]:
    """Line -> the answer the outcome assumed for that undecided rule."""
    return {int(a["rule"].rsplit(":", 1)[-1].rstrip(")")): a["matches"] for a in o["assumptions"]}


# ----------------------------------------------------------------------------- weave


def test_weave_node_to_apiserver_is_certain() -> None:
    """kubeadm-v1.11-weave.iptables-save (bossjones/boss-ansible-role-kubernetes-kubeadm
    DEBUG.md at 7f2116d2; kube-proxy v1.11.5 iptables mode, weave-net 10.32.0.0/12). The node
    itself (192.168.1.241) to the kubernetes Service 10.96.0.1:443: nat OUTPUT line 24 ->
    KUBE-SERVICES line 43 (`! -s 10.32.0.0/12`) marks, line 44 -> line 52 ->
    KUBE-SEP-J3PAEDFFPOVQTZUH: line 35 marks again (hairpin: the source is the endpoint),
    line 36 DNATs to 192.168.1.241:6443, a local address; filter OUTPUT lines 96/97 (no
    verdict), nat POSTROUTING line 26 -> 32 masquerades (mark 0x4000), INPUT lines 80/81
    pass it (line 82's `-i weave` cannot match a packet the node sent itself). No interface,
    set or physdev question on the way: certain."""
    doc = trace(WEAVE, "--node-ip", WEAVE_NODE, "--node", "n", "--src", WEAVE_NODE,
                "--dst", "10.96.0.1", "--dport", "443")
    assert doc["dump"]["kube_proxy"].startswith("kube-proxy iptables, before 1.24")
    assert "weave" in doc["dump"]["cni"]
    (o,) = doc["outcomes"]
    assert (o["disposition"], o["endpoint"], o["certain"], o["masquerade"]) == \
        ("delivered", f"{WEAVE_NODE}:6443", True, True)
    assert lines_of(o) == [24, 43, 31, 44, 52, 35, 31, 36, 96, 97, 26, 32, 80, 81]


def test_weave_node_to_a_pod_is_masqueraded_by_weave() -> None:
    """The node to a pod 10.32.0.2:8080 (no Service): nat OUTPUT line 24 (KUBE-SERVICES has
    nothing for it; line 49 needs a LOCAL destination), filter OUTPUT 96/97, nat POSTROUTING
    line 26 -> KUBE-POSTROUTING (no mark), line 27 is Docker's 172.17.0.0/16, line 28 ->
    WEAVE: line 56 `! -s 10.32.0.0/12 -d 10.32.0.0/12 -j MASQUERADE` — weave hides the host
    behind the address of the device it leaves by (the weave bridge's on the real node; the
    trace shows the node's and says so). Certain."""
    doc = trace(WEAVE, "--node-ip", WEAVE_NODE, "--node", "n", "--src", WEAVE_NODE,
                "--dst", "10.32.0.2", "--dport", "8080")
    (o,) = doc["outcomes"]
    assert (o["disposition"], o["masquerade"], o["certain"]) == ("passed", True, True)
    assert lines_of(o) == [24, 96, 97, 26, 28, 56]
    assert any("the interface it leaves by" in n for n in o["notes"])


def test_weave_outside_client_to_the_kubelet() -> None:
    """An outside client to the node's kubelet port 10250: nat PREROUTING line 22 ->
    KUBE-SERVICES (line 49 -> KUBE-NODEPORTS, empty), line 23 -> DOCKER (line 29 needs
    docker0: a CNI/runtime device, not the uplink the packet came by); INPUT line 80 (no
    KUBE-EXTERNAL-SERVICES rule), 81 (KUBE-FIREWALL: no 0x8000 mark), line 82 `-i weave`
    does not match a packet from the uplink: it reaches the kubelet with the client's
    address. Certain."""
    doc = trace(WEAVE, "--node-ip", WEAVE_NODE, "--from", "external=198.51.100.7",
                "--to", f"{WEAVE_NODE}:10250")
    (o,) = doc["outcomes"]
    assert (o["endpoint"], o["masquerade"], o["seen_source"], o["certain"]) == \
        (f"{WEAVE_NODE}:10250", False, "198.51.100.7", True)
    assert lines_of(o) == [22, 49, 23, 80, 81]


def test_weave_pod_to_kube_dns_depends_on_weave_npc() -> None:
    """A packet from a pod 10.32.0.5 asks kube-dns 10.96.0.10:53/udp:

    - nat PREROUTING line 22 -> KUBE-SERVICES; line 45 (`! -s 10.32.0.0/12 ... -j
      KUBE-MARK-MASQ`) does not match a pod source; line 46 -> KUBE-SVC-TCOU7JCQXEZGVUNU,
      line 53 (probability 0.5) -> KUBE-SEP-SZZ7MOWKTWUFXIJT = DNAT 10.32.0.2:53 (line 40),
      else line 54 -> KUBE-SEP-3DU66DE6VORVEQVD = DNAT 10.32.0.3:53 (line 34);
    - nat POSTROUTING: no 0x4000 mark for line 32; line 27 is Docker's 172.17.0.0/16; WEAVE
      lines 56/57 masquerade only when exactly one side is outside 10.32.0.0/12: the DNS pod
      sees 10.32.0.5;
    - filter FORWARD is weave-npc's: line 83 `-i weave` and line 84 `-o weave` depend on the
      devices, which a dump does not name (the first undecided rule of every outcome is line
      83); behind them physdev (lines 109, 116) and the namespaces' ipsets (lines 112-114,
      123-128) decide. Where none lets it through, line 86 (`-o weave -j DROP`) or line 121
      (`-m mark ! --mark 0x40000/0x40000 -j DROP`) drops it. So: delivered to either endpoint
      at 1/2, or dropped — none of it certain, nothing settled;
    - weave-npc tests each egress set twice in a row (line 123 marks through
      WEAVE-NPC-EGRESS-ACCEPT, line 124 returns; same set, same source): one question, so
      lines 124/126/128 are never an assumption of their own.
    """
    doc = trace(WEAVE, "--node-ip", WEAVE_NODE, "--node", "n", "--src", "10.32.0.5",
                "--dst", "10.96.0.10", "--dport", "53", "--proto", "udp")
    outs = doc["outcomes"]
    assert doc["settled"] is None
    assert {o["disposition"] for o in outs} == {"delivered", "dropped"}
    delivered = [o for o in outs if o["disposition"] == "delivered"]
    assert {o["endpoint"] for o in delivered} == {"10.32.0.2:53", "10.32.0.3:53"}
    assert all(o["probability"] == 0.5 for o in outs)
    assert all(not o["masquerade"] and o["seen_source"] == "10.32.0.5" for o in delivered)
    assert all(o["certain"] is False for o in outs)
    assert all(o["depends_on"][0].endswith(f"({WEAVE}:83)") for o in outs)
    for o in delivered:
        dnat = [n for n in lines_of(o) if n in (34, 40)]
        assert dnat == [40 if o["endpoint"] == "10.32.0.2:53" else 34]
    assert not any({124, 126, 128} & set(assumed(o)) for o in outs)
    # one path read off the dump: in by weave (83), not from the bridge's own port (116), the
    # source in the default namespace's egress set (123: marked by 122, 124 returns, implied),
    # out by weave (84), not to the bridge port (109), the destination in the default
    # namespace's ingress set (112): accepted there
    path = {83: True, 116: False, 123: True, 84: True, 109: False, 112: True}
    hits = {o["endpoint"]: lines_of(o) for o in delivered if assumed(o) == path}
    assert hits == {"10.32.0.2:53": [22, 46, 53, 40, 83, 118, 123, 122, 124, 84, 110, 112,
                                     26, 28],
                    "10.32.0.3:53": [22, 46, 54, 34, 83, 118, 123, 122, 124, 84, 110, 112,
                                     26, 28]}
    # and the egress drop: no egress set holds the source
    drop = {83: True, 116: False, 123: False, 125: False, 127: False}
    dropped = [o for o in outs if assumed(o) == drop]
    assert len(dropped) == 2 and all(o["disposition"] == "dropped" and lines_of(o)[-1] == 121
                                     for o in dropped)


def test_weave_pod_to_internet_is_masqueraded_by_weave() -> None:
    """The pod to 8.8.8.8:443: no Service matches (line 49 needs a LOCAL destination), so it
    is forwarded; nat POSTROUTING line 28 -> WEAVE, line 57 `-s 10.32.0.0/12 ! -d
    10.32.0.0/12 -j MASQUERADE`: every outcome that leaves is masqueraded (the node's
    address shown, 192.168.1.241). Whether it leaves is weave-npc's egress decision (line 83
    first), as above; out by a device other than weave, line 87 (`-i weave ! -o weave`)
    accepts it."""
    doc = trace(WEAVE, "--node-ip", WEAVE_NODE, "--node", "n", "--src", "10.32.0.5",
                "--dst", "8.8.8.8", "--dport", "443")
    outs = doc["outcomes"]
    assert {o["disposition"] for o in outs} == {"passed", "dropped"}
    passed = [o for o in outs if o["disposition"] == "passed"]
    assert all(o["masquerade"] and o["seen_source"] == WEAVE_NODE for o in passed)
    assert all(lines_of(o)[-3:] == [26, 28, 57] for o in passed)
    assert all(o["certain"] is False and o["depends_on"][0].endswith(f"({WEAVE}:83)")
               for o in outs)
    assert lines_of(next(o for o in passed if assumed(o) == {83: True, 116: True, 84: False})) \
        == [22, 83, 116, 87, 26, 28, 57]


def test_weave_outside_client_to_cluster_ip_meets_weave_npc() -> None:
    """An off-cluster client to kube-dns's ClusterIP 10.96.0.10:53/tcp through this node: line
    47 `! -s 10.32.0.0/12` marks it (line 31), line 48 -> KUBE-SVC-ERIFXISQEP7F7OF4: line 50
    (1/2) -> DNAT 10.32.0.2:53 (line 42), else line 51 -> DNAT 10.32.0.3:53 (line 38). It came
    in by the uplink, so line 83 (`-i weave`) does not match; out by weave, line 84 sends it
    to WEAVE-NPC, which lets a NEW connection through by physdev (line 109) or the
    destination's namespace set (lines 112-114), else line 86 drops it. Delivered ones are
    masqueraded by KUBE-POSTROUTING (line 32): the DNS pod sees the node. Every outcome
    depends on line 84 first."""
    doc = trace(WEAVE, "--node-ip", WEAVE_NODE, "--from", "external=198.51.100.7",
                "--to", "10.96.0.10:53", "--proto", "tcp")
    outs = doc["outcomes"]
    assert {o["disposition"] for o in outs} == {"delivered", "dropped"}
    assert not any(o["certain"] for o in outs)
    assert all(o["depends_on"][0].endswith(f"({WEAVE}:84)") for o in outs)
    delivered = [o for o in outs if o["disposition"] == "delivered"]
    assert {o["endpoint"] for o in delivered} == {"10.32.0.2:53", "10.32.0.3:53"}
    for o in delivered:
        assert o["masquerade"] and o["seen_source"] == WEAVE_NODE
        n = lines_of(o)
        assert n[:4] == [22, 47, 31, 48] and n[-2:] == [26, 32]
        assert (42 if o["endpoint"] == "10.32.0.2:53" else 38) in n
    dropped = [o for o in outs if o["disposition"] == "dropped"]
    assert all(lines_of(o)[-1] == 86 for o in dropped)


@pytest.mark.tools
def test_weave_dump_loads_whole_with_its_sets(tmp_path: Path) -> None:
    """The dump as published loads in the real `iptables-legacy-restore --test`, set rules
    included: its six weave-npc sets are created (empty, `hash:ip`) in a network namespace of
    its own first (`unshare --net`; ipsets are per namespace, gone with it). Without them
    it does not load: the test can tell."""
    restore = shutil.which("iptables-legacy-restore")
    if restore is None or shutil.which("ipset") is None or shutil.which("unshare") is None:
        pytest.skip("iptables-legacy-restore, ipset or unshare is not installed")
    sets = sorted(set(re.findall(r"--match-set (\S+) (?:src|dst)", WEAVE.read_text())))
    assert len(sets) == 6
    script = "".join(f"ipset create {shlex.quote(s)} hash:ip\n" for s in sets)
    res = subprocess.run(["unshare", "--net", "sh", "-ec",
                          script + f"{restore} --test {shlex.quote(str(WEAVE))}\n"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    bad = subprocess.run(["unshare", "--net", restore, "--test", str(WEAVE)],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0


# ----------------------------------------------------------------------------- kube-proxy nftables
# k3s-pi-kube-proxy-nftables.nft: `table ip kube-proxy` of a k3s node (a Raspberry Pi 4 of a
# five-node lab cluster, pods 10.42.0.0/16, Services 10.43.0.0/16) with kube-proxy in nftables
# mode (mirzahilmi/latency-aware-kubernetes proberv2/docs/SAMPLE.md at 7b5b7cbc, 2025-11). Only
# kube-proxy's table: flannel's rules are not in it. Every flow is decided: no set without its
# elements, no interface match.


def test_nft_pod_to_kube_dns_keeps_its_address() -> None:
    """A pod 10.42.2.7 to kube-dns 10.43.0.10:53/udp: nat-prerouting line 6 -> services, line
    10 looks up @service-ips: `10.43.0.10 . udp . 53 : goto service-FY5PMXPG-...` (line 18);
    that chain's line 237 (`ip saddr != 10.42.0.0/16`) does not mark a pod, line 238 (`numgen
    random mod 1`) -> endpoint-S4FSIJI2, whose line 232 needs the endpoint's own source, line
    233 DNATs to 10.42.0.171:53. filter-prerouting line 78 (firewall-check: @firewall-ips is
    empty), filter-forward lines 89/90 (no-endpoint and cluster-ips checks: the destination is
    now a pod), nat-postrouting line 111 -> masquerading, line 127 returns (no 0x4000 mark):
    the DNS pod sees 10.42.2.7. Certain."""
    doc = trace(K3S_NFT, "--node", "n", "--src", "10.42.2.7", "--dst", "10.43.0.10",
                "--dport", "53", "--proto", "udp")
    assert doc["dump"]["kube_proxy"].startswith("kube-proxy nftables, 1.31-1.33 rule shape")
    assert doc["dump"]["node_ips"] == [PI_NODE]  # inferred from @nodeport-ips (line 37)
    (o,) = doc["outcomes"]
    assert (o["disposition"], o["endpoint"], o["masquerade"], o["seen_source"], o["certain"]) \
        == ("delivered", "10.42.0.171:53", False, "10.42.2.7", True)
    assert lines_of(o) == [78, 6, 10, 10, 238, 233, 89, 90, 111, 127]


def test_nft_node_port_spreads_over_nine_endpoints_and_masquerades() -> None:
    """An outside client to the node's NodePort 10.34.4.246:30000: line 10 finds no ClusterIP,
    line 11 (daddr in @nodeport-ips) looks up @service-nodeports: `tcp . 30000 : goto
    external-P6J77WGM-...` (line 31); line 41 marks for masquerade (line 138), line 42 ->
    service-P6J77WGM, whose line 47 (`numgen random mod 9 vmap`) picks one of nine endpoints,
    1/9 each, each DNAT (e.g. line 148: 10.42.4.201:8080). nat-postrouting: line 127 sees the
    0x4000 mark, 128 clears it, 129 masquerades (`fully-random`): the pod sees the node."""
    doc = trace(K3S_NFT, "--from", "external=198.51.100.7", "--to", f"{PI_NODE}:30000")
    outs = doc["outcomes"]
    want = {"10.42.2.218:8080": 253, "10.42.4.201:8080": 148, "10.42.4.202:8080": 153,
            "10.42.4.203:8080": 158, "10.42.4.204:8080": 163, "10.42.4.205:8080": 168,
            "10.42.4.206:8080": 173, "10.42.4.207:8080": 178, "10.42.5.164:8080": 258}
    assert {o["endpoint"]: lines_of(o) for o in outs} == {
        ep: [78, 6, 11, 11, 41, 138, 42, 47, dnat, 89, 90, 111, 128, 129]
        for ep, dnat in want.items()}
    assert all((o["probability"], o["masquerade"], o["seen_source"], o["certain"]) ==
               (pytest.approx(1 / 9), True, PI_NODE, True) for o in outs)


def test_nft_endpoint_to_its_own_service_is_masqueraded() -> None:
    """kube-dns's own pod 10.42.0.171 to 10.43.0.10:53/udp: line 238 picks its own endpoint,
    whose line 232 (`ip saddr 10.42.0.171 jump mark-for-masquerade`, the hairpin rule) marks it
    (line 138) before line 233 DNATs; masquerading lines 128/129 then hide its address from
    itself."""
    doc = trace(K3S_NFT, "--node", "n", "--src", "10.42.0.171", "--dst", "10.43.0.10",
                "--dport", "53", "--proto", "udp")
    (o,) = doc["outcomes"]
    assert (o["endpoint"], o["masquerade"], o["seen_source"], o["certain"]) == \
        ("10.42.0.171:53", True, PI_NODE, True)
    assert lines_of(o) == [78, 6, 10, 10, 238, 232, 138, 233, 89, 90, 111, 128, 129]


@pytest.mark.parametrize(("dst", "dport", "disposition", "last"), [
    # a Service without endpoints: @no-endpoint-services (line 119) -> reject-chain, line 143
    ("10.43.21.102", 4317, "rejected", 143),
    # a ClusterIP on a port it does not serve: cluster-ips-check line 133 rejects
    ("10.43.0.10", 80, "rejected", 133),
    # an address in the Service range that no Service has: line 134 drops
    ("10.43.99.99", 80, "dropped", 134),
])
def test_nft_service_range_misses(dst: str, dport: int, disposition: str, last: int) -> None:
    """kube-proxy's filter checks for what no service-ips element takes: filter-forward line
    89 (service-endpoints-check) and line 90 (cluster-ips-check), each certain."""
    doc = trace(K3S_NFT, "--node", "n", "--src", "10.42.2.7", "--dst", dst,
                "--dport", str(dport))
    (o,) = doc["outcomes"]
    assert (o["disposition"], o["certain"], lines_of(o)[-1]) == (disposition, True, last)


@pytest.mark.tools
def test_nft_listing_loads_in_nft_check() -> None:
    """The listing as published is accepted by the real `nft -c -f` (in a network namespace of
    its own; `-c` changes nothing anyway)."""
    if shutil.which("nft") is None or shutil.which("unshare") is None:
        pytest.skip("nft or unshare is not installed")
    res = subprocess.run(["unshare", "--net", "nft", "-c", "-f", str(K3S_NFT)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
