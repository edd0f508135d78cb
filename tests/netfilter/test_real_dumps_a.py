"""Real Kubernetes nodes' dumps, round 3 (helper a: flannel, k3s, calico), traced standalone
through the CLI (``trace --dump FILE --node-ip IP``, no cluster file). Sources: data/real/README.md.
Each test's docstring derives the expected outcome by reading the dump; line numbers are the
dump's own, and each test checks the exact list of dump lines the trace went through.

A masqueraded source is shown as the node address given with --node-ip: MASQUERADE takes the
address of the interface the packet leaves by, which no dump names (the trace says so in a
note); on these nodes a packet leaving by the CNI bridge or the VXLAN device takes that
device's address instead."""

# ruff: noqa: E501  (dump lines are quoted whole)

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from real_dump_helpers import cli

from sourceip.netfilter.evaluate import iface_matches

REAL = Path(__file__).parent / "data" / "real"
FLANNEL = REAL / "kubeadm-v1.29.4-flannel.iptables-save"
MASQ_NOTE = "masqueraded to the address of the interface it leaves by"


def trace_json(dump: Path, node_ip: str, *args: str) -> dict[str, Any]:
    """``sourceip trace --dump DUMP --node-ip NODE_IP ARGS -o json``, parsed."""
    res = cli("trace", "--dump", str(dump), "--node-ip", node_ip, *args, "-o", "json")
    assert res.returncode == 0, res.stderr
    doc: dict[str, Any] = json.loads(res.stdout)
    return doc


def lines(outcome: dict[str, Any]) -> list[int | None]:
    """The dump lines of every step of an outcome, in order (None: a chain's policy)."""
    return [s["loc"]["line"] if s["loc"] else None
            for h in outcome["hops"] for s in h["steps"]]


def by_endpoint(doc: dict[str, Any]) -> dict[str | None, dict[str, Any]]:
    return {o["endpoint"]: o for o in doc["outcomes"]}


def _iface_holds(undecided: str, iif: str, oif: str) -> bool:
    """``-i NAME`` / ``! -o NAME+`` (an undecided interface match) for a packet that really
    came in on ``iif`` and goes out on ``oif``."""
    words = undecided.split()
    neg = words[0] == "!"
    flag, name = words[-2], words[-1]
    assert flag in ("-i", "-o"), undecided
    return iface_matches(iif if flag == "-i" else oif, name) != neg


def in_world(o: dict[str, Any], iif: str, oif: str) -> bool:
    """Whether outcome ``o`` is the one of the real node, where the packet came in on ``iif``
    and left on ``oif``: every rule the stand-in could not decide (its devices are unknown: a
    `--node` flow's input and every route's output) was taken the way those devices answer."""
    return all(a["matches"] == all(_iface_holds(u, iif, oif) for u in a["undecided"])
               for a in o["assumptions"])


def real_world(doc: dict[str, Any], iif: str, oif: str) -> dict[str | None, dict[str, Any]]:
    """The outcomes of the real devices (``in_world``) by endpoint; every other outcome ends the
    same way as the real one of its endpoint (only Docker's docker0 rules are undecided)."""
    real = [o for o in doc["outcomes"] if in_world(o, iif, oif)]
    got = {o["endpoint"]: o for o in real}
    assert len(got) == len(real)
    for o in doc["outcomes"]:
        r = got[o["endpoint"]]
        assert (o["disposition"], o["masquerade"], o["seen_source"]) == \
            (r["disposition"], r["masquerade"], r["seen_source"])
        assert all("docker0" in u for a in o["assumptions"] for u in a["undecided"])
    return got


# ----------------------------------------------------------------------------- flannel
# kubeadm v1.29.4 control-plane node 192.168.157.133 (Docker + cri-dockerd), flannel VXLAN
# with its default network 10.244.0.0/16; this node's pod subnet is 10.244.0.0/24 (FLANNEL-
# POSTRTG line 104). service1 (10.108.64.11, ports 8080 and 3000) has three endpoints on the
# worker (10.244.1.4-6); coredns runs here (10.244.0.4, 10.244.0.5).

# the filter FORWARD walk of a NEW connection between pods that nothing marked: line 35
# (KUBE-PROXY-FIREWALL, empty), 36 -> KUBE-FORWARD (57 INVALID, 58 mark, 59 ESTABLISHED: none
# match), 37/38 (filter KUBE-SERVICES / KUBE-EXTERNAL-SERVICES, empty), 39 -> DOCKER-USER
# returns (53), 40 -> DOCKER-ISOLATION-STAGE-1 returns (50: not from docker0), 41-44 need
# docker0, 45 -> FLANNEL-FWD, 54 accepts any source in 10.244.0.0/16
FLANNEL_FORWARD_POD = [35, 36, 37, 38, 39, 53, 40, 50, 45, 54]
# nat POSTROUTING of an unmarked pod packet to a pod: 99 -> KUBE-POSTROUTING returns (110, no
# 0x4000 mark), 100 is Docker's (-s 172.17.0.0/16), 101 -> FLANNEL-POSTRTG, 104 returns
# (-s 10.244.0.0/24 -d 10.244.0.0/16: from this node's pods to any pod)
FLANNEL_POST_POD_TO_POD = [99, 110, 101, 104]


def test_flannel_pod_to_cluster_ip_keeps_its_address_across_nodes() -> None:
    """A pod here (10.244.0.7) to service1:downloader 10.108.64.11:3000. nat PREROUTING line 95
    -> KUBE-SERVICES; line 144 -> KUBE-SVC-XFIT55N4IPARHPG5, whose line 157 `! -s
    10.244.0.0/16` does not mark a pod; line 158 (probability 0.33333333349) ->
    KUBE-SEP-LADV24EFL6BSD2AA DNAT 10.244.1.4:3000 (line 126), else line 159 (0.5 of the
    rest) -> DNAT 10.244.1.5:3000 (line 124), else line 160 -> 10.244.1.6:3000 (line 118).
    FORWARD accepts it at FLANNEL-FWD line 54, FLANNEL-POSTRTG line 104 returns: the
    worker's pods see 10.244.0.7, each with probability 0.33333333349 or
    (1 - 0.33333333349) / 2 = 0.333333333255. A `--node` flow's devices are unknown to the
    stand-in, so Docker's `-i docker0` rules (lines 41-44, 50) fork: the real node's branch
    is the one where the pod's cni0 and the route's flannel.1 answer them, and every other
    branch ends the same way (settled)."""
    doc = trace_json(FLANNEL, "192.168.157.133", "--node", "n", "--src", "10.244.0.7",
                     "--dst", "10.108.64.11", "--dport", "3000")
    assert doc["dump"]["cni"] == ["docker", "flannel", "kubelet"]
    assert doc["dump"]["kube_proxy"].startswith("kube-proxy iptables, 1.25+ rule shape")
    assert doc["settled"] is not None and doc["settled"]["seen_source"] == "10.244.0.7"
    got = real_world(doc, "cni0", "flannel.1")
    assert sorted(got) == ["10.244.1.4:3000", "10.244.1.5:3000", "10.244.1.6:3000"]
    for ep, prob, svc_rule, dnat in (("10.244.1.4:3000", 0.33333333349, 158, 126),
                                     ("10.244.1.5:3000", 0.333333333255, 159, 124),
                                     ("10.244.1.6:3000", 0.333333333255, 160, 118)):
        o = got[ep]
        assert (o["disposition"], o["probability"], o["masquerade"], o["seen_source"]) == \
            ("delivered", prob, False, "10.244.0.7")
        assert lines(o) == [95, 144, svc_rule, dnat, *FLANNEL_FORWARD_POD,
                            *FLANNEL_POST_POD_TO_POD]


def test_flannel_outside_client_to_cluster_ip_is_masqueraded_by_kube_proxy() -> None:
    """An off-cluster client 198.51.100.7 to service1:fileserver 10.108.64.11:8080 routed to
    this node: line 143 -> KUBE-SVC-YJOPSEYCAQBFRA2J, whose line 161 `! -s 10.244.0.0/16 ...
    -j KUBE-MARK-MASQ` marks it (line 109 sets 0x4000); lines 162/163/164 pick
    10.244.1.4/.5/.6:8080 (DNAT lines 116/114/120). FORWARD: KUBE-FORWARD line 58 accepts the
    marked packet. nat POSTROUTING line 99 -> KUBE-POSTROUTING: the mark is set, line 111
    clears it and line 112 masquerades (`--random-fully`), before flannel's chain (line 101)
    is reached. The pod sees the node, not the client; the trace notes that the address is
    the outgoing interface's (here flannel.1's, toward the worker), which the dump does not
    give."""
    doc = trace_json(FLANNEL, "192.168.157.133", "--from", "external=198.51.100.7",
                     "--to", "10.108.64.11:8080")
    got = by_endpoint(doc)
    assert sorted(got) == ["10.244.1.4:8080", "10.244.1.5:8080", "10.244.1.6:8080"]
    for ep, svc_rule, dnat in (("10.244.1.4:8080", 162, 116), ("10.244.1.5:8080", 163, 114),
                               ("10.244.1.6:8080", 164, 120)):
        o = got[ep]
        assert (o["masquerade"], o["certain"]) == (True, True)
        assert o["seen_source"] != "198.51.100.7"
        assert any(n.startswith(MASQ_NOTE) for n in o["notes"])
        assert lines(o) == [95, 143, 161, 109, svc_rule, dnat, 35, 36, 58, 99, 111, 112]


def test_flannel_pod_to_internet_is_masqueraded_by_flannel() -> None:
    """A pod here to 8.8.8.8:443: no Service rule matches (KUBE-SERVICES' NodePort jump, line
    145, needs a LOCAL destination), FLANNEL-FWD line 54 accepts it; nat POSTROUTING:
    KUBE-POSTROUTING returns (line 110), FLANNEL-POSTRTG lines 103-106 do not match (no mark;
    the destination is no pod) and line 107 `-s 10.244.0.0/16 ! -d 224.0.0.0/4 -j MASQUERADE
    --random-fully` masquerades it: the far end sees the node (its uplink address,
    192.168.157.133). The docker0 rules fork (the stand-in's devices are unknown); the real
    branch (in on cni0, out on the uplink) is the one derived, and all end the same way."""
    doc = trace_json(FLANNEL, "192.168.157.133", "--node", "n", "--src", "10.244.0.7",
                     "--dst", "8.8.8.8", "--dport", "443")
    assert doc["settled"] is not None
    (o,) = real_world(doc, "cni0", "ens33").values()
    assert (o["disposition"], o["masquerade"], o["seen_source"]) == \
        ("passed", True, "192.168.157.133")
    assert lines(o) == [95, *FLANNEL_FORWARD_POD, 99, 110, 101, 107]


def test_flannel_coredns_hairpin_is_masqueraded_the_other_replica_is_not() -> None:
    """coredns 10.244.0.4 asks kube-dns 10.96.0.10:53/udp (line 142 -> KUBE-SVC-TCOU7JCQXEZGVUNU):
    with probability 0.5 line 155 picks itself, KUBE-SEP-WXWGHGKZOCNYRYI7, whose line 137
    `-s 10.244.0.4/32 -j KUBE-MARK-MASQ` marks the hairpin before the DNAT (line 138);
    KUBE-FORWARD line 58 accepts and KUBE-POSTROUTING line 112 masquerades it: the pod does
    not see its own address (really the cni0 bridge's, 10.244.0.1; the trace notes it).
    Otherwise line 156 -> 10.244.0.5:53 (line 130), unmarked: flannel's line 104 returns and
    10.244.0.5 sees 10.244.0.4."""
    doc = trace_json(FLANNEL, "192.168.157.133", "--node", "n", "--src", "10.244.0.4",
                     "--dst", "10.96.0.10", "--dport", "53", "--proto", "udp")
    assert doc["settled"] is None  # one replica sees itself masqueraded, the other does not
    got = real_world(doc, "cni0", "cni0")
    assert sorted(got) == ["10.244.0.4:53", "10.244.0.5:53"]
    self_, other = got["10.244.0.4:53"], got["10.244.0.5:53"]
    assert (self_["probability"], self_["masquerade"], self_["certain"]) == (0.5, True, True)
    assert self_["seen_source"] != "10.244.0.4"
    assert any(n.startswith(MASQ_NOTE) for n in self_["notes"])
    assert lines(self_) == [95, 142, 155, 137, 109, 138, 35, 36, 58, 99, 111, 112]
    assert (other["probability"], other["masquerade"], other["seen_source"]) == \
        (0.5, False, "10.244.0.4")
    assert not other["notes"]
    assert lines(other) == [95, 142, 156, 130, *FLANNEL_FORWARD_POD, *FLANNEL_POST_POD_TO_POD]


# ----------------------------------------------------------------------------- k3s
# k3s v1.30.6+k3s1 single node "pi" (Raspberry Pi, 192.168.1.105), iptables v1.8.10 (nf_tables):
# flannel (10.42.0.0/16, this node 10.42.0.0/24), k3s' embedded kube-router network-policy
# controller (KUBE-ROUTER-*, KUBE-POD-FW-*, KUBE-NWPLCY-DEFAULT: no NetworkPolicy, so every
# pod's chain ends in the default "allow" marks), CNI portmap chains, NetBird's wt0 rules, and
# Traefik on the host network with externalIP 100.90.167.160 (the node's wt0 address).
K3S = REAL / "k3s-v1.30.6-flannel-kube-router.iptables-save"

# KUBE-ROUTER-FORWARD sends a packet to a pod's chain twice: once by address (e.g. line 176)
# and once more by address with `-m physdev --physdev-is-bridged` (line 177). Whether a packet
# is bridged depends on the node's bridge ports, which a dump does not list: the physdev rules
# are undecidable and fork the trace. Both branches go through the same chain, whose rules
# only mark (KUBE-NWPLCY-DEFAULT line 72 sets 0x10000, the chain's last two rules clear it and
# set 0x20000), so every branch reaches FORWARD line 56 (`--mark 0x20000/0x20000 -j ACCEPT`).
K3S_FORWARD_TAIL = [52, 53, 54, 55, 56]

# FORWARD line 51 (`-i wt0 -j ACCEPT`, NetBird) and INPUT line 43 (the same on INPUT): a
# packet that reaches the node from outside, or one `--node` traces as arriving on the node's
# uplink, comes in on an interface whose name the dump does not give (eth0 stands in for it;
# `--node-interface` would name it). wt0 is no CNI device, so the rule is undecidable: the trace
# forks on it. Matching, FORWARD accepts right there (lines 52-56 are skipped) and the outcome
# is the same; the branches where it does not match walk the path derived in each test.
WT0_FORWARD = 51


def assumed(o: dict[str, Any]) -> dict[int, bool]:
    """The undecided rules of an outcome, by dump line: assumed to match or not."""
    return {int(a["rule"].rsplit(":", 1)[1].rstrip(")")): a["matches"] for a in o["assumptions"]}


def split_on_wt0(outcomes: list[dict[str, Any]], line: int = WT0_FORWARD
                 ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(outcomes assuming the wt0 rule at ``line`` does not match, those assuming it does);
    every outcome names it, and both halves are the same size."""
    assert all(line in assumed(o) for o in outcomes)
    miss = [o for o in outcomes if not assumed(o)[line]]
    hit = [o for o in outcomes if assumed(o)[line]]
    assert len(miss) == len(hit)
    return miss, hit


def wt0_accepts(o: dict[str, Any], before: list[int | None], post: list[int]) -> None:
    """A branch where FORWARD line 51 matched: the path up to the FORWARD chain's line 51,
    accepted there, then nat POSTROUTING ``post``."""
    assert lines(o) == [*before, WT0_FORWARD, *post]


def test_k3s_pod_to_cluster_ip_forks_on_physdev_and_is_delivered_either_way() -> None:
    """ytdl 10.42.0.51 to redis 10.43.111.105:6379. nat PREROUTING line 303 -> KUBE-SERVICES;
    line 365 -> KUBE-SVC-OKJCEJEOAS2LLIDR, whose first rule (`! -s 10.42.0.0/16`) does not
    mark a pod; line 393 -> KUBE-SEP-GP4EVLOCJ42DFVEM, DNAT 10.42.0.11:6379 (line 348).
    FORWARD line 49 -> KUBE-ROUTER-FORWARD: line 176 (`-d 10.42.0.11/32`) -> redis' chain
    KUBE-POD-FW-4BDGZEWEU32YM75H (line 77 -> KUBE-NWPLCY-DEFAULT line 72, then lines 80, 81);
    line 177 is the same jump with `--physdev-is-bridged` (undecidable); line 206
    (`-s 10.42.0.51/32`) -> ytdl's chain KUBE-POD-FW-KGZXVWTG6NN7TQSS (121 -> 72, 125, 126);
    line 207 its physdev twin: the same question about the same packet, so it takes line
    177's answer (it is bridged at both or at neither). Lines 52-55 do not decide (no 0x4000
    mark, empty chains), line 56 accepts on 0x20000. POSTROUTING: 307 (CNI-HOSTPORT-MASQ
    needs 0x2000), 308 -> KUBE-POSTROUTING returns at 332, 309 -> FLANNEL-POSTRTG returns at
    313 (pod to pod). Two branches (177 matching or not), each delivered to
    10.42.0.11:6379 with the pod's own address and each uncertain, naming line 177."""
    doc = trace_json(K3S, "192.168.1.105", "--node", "n", "--src", "10.42.0.51",
                     "--dst", "10.43.111.105", "--dport", "6379")
    assert doc["dump"]["files"][0]["description"] == "iptables-save (nf_tables back end)"
    assert doc["dump"]["cni"] == ["flannel", "kubelet", "kube-router", "CNI plugins (portmap/bridge)"]
    every, wt0 = split_on_wt0(doc["outcomes"])
    outcomes = every
    assert len(outcomes) == 2
    for o in every + wt0:
        assert (o["disposition"], o["endpoint"], o["probability"], o["masquerade"],
                o["seen_source"], o["certain"]) == \
            ("delivered", "10.42.0.11:6379", 1.0, False, "10.42.0.51", False)
        assert [d.rsplit(":", 1)[1] for d in o["depends_on"]] == ["177)", "51)"]
        assert "--physdev-is-bridged" in o["depends_on"][0]
    # the twin at 207 follows 177: both twins taken, or neither
    paths = {tuple(a["matches"] for a in o["assumptions"][:1]) * 2: lines(o) for o in outcomes}
    redis, ytdl = [77, 72, 80, 81], [121, 72, 125, 126]
    nat, post = [303, 365, 393, 348], [307, 308, 332, 309, 313]
    assert paths[(False, False)] == [*nat, 49, 176, *redis, 206, *ytdl, *K3S_FORWARD_TAIL, *post]
    assert paths[(True, True)] == [*nat, 49, 176, *redis, 177, *redis, 206, *ytdl, 207, *ytdl,
                                   *K3S_FORWARD_TAIL, *post]
    for o in wt0:
        if not assumed(o)[177]:
            wt0_accepts(o, [*nat, 49, 176, *redis, 206, *ytdl], post)


def test_k3s_netbird_peer_to_traefik_external_ip_sees_the_client() -> None:
    """A NetBird peer 100.90.149.44 to Traefik's externalIP 100.90.167.160:443 (the write-up's
    own flow). Line 303 -> KUBE-SERVICES, line 364 (`-d 100.90.167.160/32 ... --dport 443`) ->
    KUBE-EXT-CVG3OEGEH7H5P3HQ: line 320 marks it for masquerade (328 sets 0x4000), line 321 ->
    KUBE-SVC-CVG3OEGEH7H5P3HQ, whose line 383 -> KUBE-SEP-QEVIGMRENYKM2NRG, DNAT
    192.168.1.105:443 (line 358): Traefik runs on the host network, so the packet is for the
    node itself. INPUT: KUBE-ROUTER-INPUT (line 42) has nothing for it, line 43 wants wt0,
    lines 44-47 decide nothing, the policy accepts. A locally delivered packet never reaches
    nat POSTROUTING, so the 0x4000 mark masquerades nothing: Traefik sees the peer's address.
    No physdev rule is on the INPUT path, but line 43 is: the peer's packets do arrive on wt0,
    which the dump cannot say of the interface the trace gives them, so line 43 forks; matching
    it accepts at once, with the same answer."""
    doc = trace_json(K3S, "192.168.1.105", "--from", "external=100.90.149.44",
                     "--to", "100.90.167.160:443")
    (o,), (o43,) = split_on_wt0(doc["outcomes"], 43)
    for x in (o, o43):
        assert (x["disposition"], x["endpoint"], x["masquerade"], x["seen_source"],
                x["certain"]) == ("delivered", "192.168.1.105:443", False, "100.90.149.44",
                                  False)
        (dep,) = x["depends_on"]
        assert dep == f"-A INPUT -i wt0 -j ACCEPT ({K3S}:43)"
    assert lines(o) == [303, 364, 320, 328, 321, 383, 358, 42, 44, 45, 46, 47]
    assert lines(o43) == [303, 364, 320, 328, 321, 383, 358, 42, 43]
    # Named, the uplink decides it: certain again, as derived.
    (named,) = trace_json(K3S, "192.168.1.105", "--node-interface", "eth0", "--from",
                          "external=100.90.149.44", "--to", "100.90.167.160:443")["outcomes"]
    assert named["certain"] is True and lines(named) == lines(o)


def test_k3s_node_port_from_outside_is_masqueraded_by_kube_proxy() -> None:
    """An outside client to the registry's NodePort 192.168.1.105:30500: line 379 (`--dst-type
    LOCAL`) -> KUBE-NODEPORTS, line 330 -> KUBE-EXT-UHY5YTYXWYGJMWN5 (324 marks, 328), 325 ->
    KUBE-SVC-UHY5YTYXWYGJMWN5, line 401 -> KUBE-SEP-47TYL3K3JWJ36POJ, DNAT 10.42.0.10:5000
    (line 338). FORWARD: line 208 -> the registry pod's chain (104 -> 72, 107, 108), its physdev
    twin line 209 undecidable; KUBE-FORWARD line 67 accepts the 0x4000-marked packet.
    POSTROUTING: line 307's chain needs 0x2000, KUBE-POSTROUTING keeps the marked packet,
    clears the mark (333) and masquerades it (334): the registry sees the node, not the
    client (the cni0 bridge's address on the real node; the trace notes it). Two branches
    (209 matching or not), both so."""
    doc = trace_json(K3S, "192.168.1.105", "--from", "external=198.51.100.7",
                     "--to", "192.168.1.105:30500")
    every, wt0 = split_on_wt0(doc["outcomes"])
    assert len(every) == 2
    registry = [104, 72, 107, 108]
    head, tail = [303, 379, 330, 324, 328, 325, 401, 338, 49, 208, *registry], \
        [52, 53, 67, 307, 308, 333, 334]
    for o in every + wt0:
        assert (o["disposition"], o["endpoint"], o["masquerade"], o["certain"]) == \
            ("delivered", "10.42.0.10:5000", True, False)
        assert o["seen_source"] != "198.51.100.7"
        assert any(n.startswith(MASQ_NOTE) for n in o["notes"])
        dep, dep51 = o["depends_on"]
        assert dep.endswith(f"({K3S}:209)") and dep51.endswith(f"({K3S}:51)")
    for o in every:
        twin = assumed(o)[209]
        assert lines(o) == ([*head, 209, *registry, *tail] if twin else [*head, *tail])
    for o in wt0:
        if not assumed(o)[209]:
            wt0_accepts(o, head, tail[3:])
    # Every branch ends the same way: the answer is settled despite the two undecided rules.
    assert doc["settled"] == {"disposition": "delivered", "seen_source": "192.168.1.105",
                              "masquerade": True, "endpoints": ["10.42.0.10:5000"],
                              "despite": 2}
    text = cli("trace", "--dump", str(K3S), "--node-ip", "192.168.1.105", "--from",
               "external=198.51.100.7", "--to", "192.168.1.105:30500").stdout.splitlines()
    assert text[6] == ("whichever way the 2 undecided rules go: DELIVERED; the pod sees "
                       "192.168.1.105 (masqueraded)")


def test_k3s_pod_to_internet_is_masqueraded_by_flannel() -> None:
    """ytdl-worker 10.42.0.52 to 1.1.1.1:443: no Service rule (line 379 needs a LOCAL
    destination); FORWARD line 198 (`-s 10.42.0.52/32`) -> its chain
    KUBE-POD-FW-5SIOAJNH6ODJP6UR (85 -> 72, 89, 90), physdev twin line 199 undecidable, line 56
    accepts on 0x20000. POSTROUTING: KUBE-POSTROUTING returns (332), FLANNEL-POSTRTG line 316
    (`-s 10.42.0.0/16 ! -d 224.0.0.0/4 -j MASQUERADE --random-fully`) masquerades it."""
    doc = trace_json(K3S, "192.168.1.105", "--node", "n", "--src", "10.42.0.52",
                     "--dst", "1.1.1.1", "--dport", "443")
    every, wt0 = split_on_wt0(doc["outcomes"])
    assert len(every) == 2
    worker = [85, 72, 89, 90]
    for o in every + wt0:
        assert (o["disposition"], o["masquerade"], o["seen_source"], o["certain"]) == \
            ("passed", True, "192.168.1.105", False)
        assert o["depends_on"][0].endswith(f"({K3S}:199)")
    for o in every:
        twin = [199, *worker] if assumed(o)[199] else []
        assert lines(o) == [303, 49, 198, *worker, *twin, *K3S_FORWARD_TAIL,
                            307, 308, 332, 309, 316]
    for o in wt0:
        if not assumed(o)[199]:
            wt0_accepts(o, [303, 49, 198, *worker], [307, 308, 332, 309, 316])


# ----------------------------------------------------------------------------- calico
# A kubeadm node "mac-k8s" (192.168.191.153) with calico in VXLAN mode (pool 192.168.0.0/16,
# this node's pods 192.168.185.x, the vxlan.calico device 192.168.185.0) and kube-proxy
# switched to ipvs mode: its nat table (`iptables-save -t nat`, after `iptables -F -t nat`
# and kube-proxy's resync: the old iptables-mode chains are declared but empty) and the
# `ipvsadm -L -n` the same write-up printed next. No `ipset save` was published, so every
# `-m set` rule (kube-proxy's KUBE-CLUSTER-IP / KUBE-NODE-PORT-TCP / KUBE-LOOP-BACK, calico's
# natOutgoing pools) is undecidable: the trace forks on each and names it.
CALICO_NAT = REAL / "calico-vxlan-ipvs-nat.iptables-save"
CALICO_IPVS = REAL / "calico-vxlan-ipvs.ipvsadm-Ln.txt"


def calico_trace(*args: str) -> dict[str, Any]:
    res = cli("trace", "--dump", str(CALICO_NAT), "--dump", str(CALICO_IPVS),
              "--node-ip", "192.168.191.153", *args, "-o", "json")
    assert res.returncode == 0, res.stderr
    doc: dict[str, Any] = json.loads(res.stdout)
    return doc


def test_calico_ipvs_pod_to_cluster_ip_forks_on_every_set_rule() -> None:
    """A pod 192.168.185.20 to nginx-basic 10.100.49.21:80. nat PREROUTING: line 44 ->
    cali-PREROUTING -> cali-fip-dnat (line 65, empty); line 45 -> KUBE-SERVICES: line 58 (`!
    -s 192.168.0.0/16`) cannot match a pod; line 59 `--dst-type LOCAL` matches (ipvs mode
    binds every ClusterIP to kube-ipvs0) -> KUBE-NODE-PORT, whose line 53 needs set
    KUBE-NODE-PORT-TCP (undecided; matching, it marks 0x4000 at line 52); line 60 (set
    KUBE-CLUSTER-IP, undecided) accepts or not, the same either way. IPVS (the ipvsadm dump):
    virtual server TCP 10.100.49.21:80 rr over 192.168.185.13/.14/.15:80, 1/3 each.
    POSTROUTING: line 48 -> cali-POSTROUTING (62 empty, 63 -> cali-nat-outgoing: line 66,
    the natOutgoing pools' sets, undecided: matching, it masquerades); line 49 ->
    KUBE-POSTROUTING: line 54 (set KUBE-LOOP-BACK, undecided) masquerades, else line 55
    returns an unmarked packet and lines 56/57 masquerade a marked one.
    So 2 x 2 x 3 assumption sets x 3 endpoints = 36 outcomes, all uncertain. The pod keeps its
    address exactly when none of 53, 66, 54 matches, which is what the node really does
    (31195 is the only NodePort, the destination is in calico's pools, the client is no
    endpoint) — but only an `ipset save` could say so."""
    doc = calico_trace("--node", "n", "--src", "192.168.185.20", "--dst", "10.100.49.21",
                       "--dport", "80")
    assert doc["dump"]["kube_proxy"] == "kube-proxy ipvs mode (10 IPVS virtual servers)"
    assert "calico" in doc["dump"]["cni"]
    outcomes = doc["outcomes"]
    assert len(outcomes) == 36
    eps = ["192.168.185.13:80", "192.168.185.14:80", "192.168.185.15:80"]
    for o in outcomes:
        a = assumed(o)
        assert o["disposition"] == "delivered" and o["endpoint"] in eps
        assert o["probability"] == 1 / 3 and o["certain"] is False
        assert list(a)[:3] == [53, 60, 66] and (54 in a) == (not a[66])
        masq = a[53] or a[66] or a.get(54, False)
        assert o["masquerade"] is masq
        assert o["seen_source"] == ("192.168.191.153" if masq else "192.168.185.20")
    kept = [o for o in outcomes if not o["masquerade"]]
    assert sorted(o["endpoint"] for o in kept) == sorted(eps * 2)  # line 60 either way
    for o in kept:
        ipvs = [None, None]  # the virtual server and its DNAT: IPVS steps, no dump line
        accept = [60] if assumed(o)[60] else []
        assert lines(o) == [44, 65, 45, 59, *accept, *ipvs, 48, 62, 63, 49, 55]


def test_calico_ipvs_pod_to_internet_depends_on_calico_nat_outgoing() -> None:
    """A pod to 8.8.8.8:443: no virtual server; line 60 (KUBE-CLUSTER-IP) undecided and
    harmless. POSTROUTING: calico's natOutgoing rule (line 66: source in
    cali40masq-ipam-pools, destination not in cali40all-ipam-pools) decides whether the pod is
    masqueraded — the question the issue says was answered "no masquerade" for certain.
    Not matching, the vxlan.calico rule (line 64) needs that output device, and
    KUBE-POSTROUTING's line 54 (KUBE-LOOP-BACK) is the only other masquerade of an unmarked
    packet. Six outcomes, all uncertain, masqueraded exactly when 66 or 54 is assumed to
    match."""
    doc = calico_trace("--node", "n", "--src", "192.168.185.20", "--dst", "8.8.8.8",
                       "--dport", "443")
    outcomes = doc["outcomes"]
    assert len(outcomes) == 6
    assert doc["settled"] is None  # the undecided rules change what 8.8.8.8 sees
    for o in outcomes:
        a = assumed(o)
        assert (o["disposition"], o["certain"]) == ("passed", False)
        assert list(a)[:2] == [60, 66]
        masq = a[66] or a.get(54, False)
        assert o["masquerade"] is masq
        assert o["seen_source"] == ("192.168.191.153" if masq else "192.168.185.20")
        tail = [66] if a[66] else [49, 54] if a[54] else [49, 55]
        assert lines(o) == [44, 65, 45, *([60] if a[60] else []), 48, 62, 63, *tail]


def test_calico_ipvs_node_port_from_outside() -> None:
    """An outside client to the NodePort 192.168.191.153:31195: line 58 (`! -s
    192.168.0.0/16` holds for it; set KUBE-CLUSTER-IP undecided) may mark it, line 59 ->
    KUBE-NODE-PORT line 53 (set KUBE-NODE-PORT-TCP, undecided) may mark it, then IPVS's
    virtual server TCP 192.168.191.153:31195 rr picks a pod. A marked packet is masqueraded
    by KUBE-POSTROUTING (56, 57) if calico's line 66 did not already; so whenever 58 or 53
    is assumed to match, the pod sees the node. The ipvsadm dump lists the virtual server on
    every node address (172.17.0.1, 192.168.185.0, 192.168.191.153)."""
    doc = calico_trace("--from", "external=198.51.100.7", "--to", "192.168.191.153:31195")
    outcomes = doc["outcomes"]
    assert {o["endpoint"] for o in outcomes} == \
        {"192.168.185.13:80", "192.168.185.14:80", "192.168.185.15:80"}
    for o in outcomes:
        a = assumed(o)
        assert o["certain"] is False and list(a)[:2] == [58, 53]
        if a[58] or a[53]:
            assert o["masquerade"] is True and o["seen_source"] == "192.168.191.153"
    assert any(not o["masquerade"] and o["seen_source"] == "198.51.100.7" for o in outcomes)
