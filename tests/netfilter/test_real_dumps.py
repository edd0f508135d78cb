"""Real nodes' dumps (``data/real/``, sources in its README) traced standalone: no cluster file,
only ``--dump`` (a subprocess of the CLI for some, the library for the rest). Each test's
docstring or comments derive the expected outcome by reading the dump; line numbers are the
dump's own.

Uncertain outcomes are expected where a rule matches an ipset whose members no dump gives
or uses a module the evaluator cannot decide: the trace forks and names the rule with file:line
instead of assuming it does not match. Fixes found on dumps that are no longer kept here (they
were not read through the code index) are tested with small hand-written inputs at the end."""

# ruff: noqa: E501  (dump lines are quoted whole)

from __future__ import annotations

import json
import shutil
from fractions import Fraction
from pathlib import Path

import pytest
from real_dump_helpers import cli, in_fresh_netns, node_trace

from sourceip.net.addr import parse_ip
from sourceip.net.packet import FiveTuple, Packet
from sourceip.netfilter.dumps import load_node_dumps
from sourceip.netfilter.evaluate import Branch, Evaluator

REAL = Path(__file__).parent / "data" / "real"
AKS = REAL / "aks-azure-npm.iptables-save"
AKS_MARCH = REAL / "aks-azure-npm-filter-2022-03.iptables-save"
KIND = REAL / "kind-v1.23.5.iptables-save"
CATTLE = REAL / "rancher-cattle-docker.iptables-save"
GATEWAY = REAL / "openvpn-gateway.iptables-save"
ROUTER = REAL / "home-router-ppp0.iptables-save"


def hook(dump: Path, name: str, src: str, dst: str, iif: str | None, oif: str | None,
         dport: int = 80) -> list[Branch]:
    """One netfilter hook of the dump's rules for one packet (library, no cluster)."""
    nd = load_node_dumps([str(dump)], ["192.0.2.1"])
    assert nd.ruleset is not None
    pkt = Packet(tuple=FiveTuple(proto="tcp", src=parse_ip(src), sport=40000,
                                 dst=parse_ip(dst), dport=dport), iif=iif, oif=oif)
    return Evaluator(nd.ruleset, nd.node_ips, ipsets=nd.ipsets).run_hook(name, pkt)


def verdicts(branches: list[Branch]) -> list[tuple[str, bool, tuple[tuple[str, bool], ...]]]:
    """(verdict, masquerade, (rule's file:line, assumed to match)...) per branch, sorted."""
    return sorted((b.disposition, b.masquerade,
                   tuple((a.rule.rsplit("(", 1)[-1].rstrip(")"), a.matches)
                         for a in b.assumptions)) for b in branches)


# ----------------------------------------------------------------------------- AKS


def test_aks_pod_to_kube_dns_picks_both_endpoints_and_depends_on_azure_npm() -> None:
    """Reading aks-azure-npm.iptables-save (azure-container-networking iptablesave-v2 at
    10ec9b66; a pod 10.224.0.50 on node 10.224.0.4 asks
    kube-dns 10.0.0.10:53/udp):

    - nat PREROUTING -> KUBE-SERVICES; line 225 `! -s 10.224.0.0/16 ... -j KUBE-MARK-MASQ` does
      not match a pod source; line 226 jumps to KUBE-SVC-TCOU7JCQXEZGVUNU;
    - line 329 (probability 0.5) -> KUBE-SEP-5XQSQOS6AJCWJD6N = DNAT 10.224.0.23:53 (line 134),
      else line 330 -> KUBE-SEP-7AE45CCKWVVINGM7 = DNAT 10.224.0.69:53 (line 136);
    - no mark, so KUBE-POSTROUTING returns (line 120); IP-MASQ-AGENT returns at line 114
      (10.224.0.0/12 holds the endpoint): the pod is seen as itself;
    - filter FORWARD line 362 sends the NEW connection through AZURE-NPM, whose rules match
      `azure-npm-*` ipsets the dump does not list: the first undecidable rule is line 384
      (kube-system's default-deny-ingress), so every outcome is uncertain and some branches
      drop (a policy may deny the DNS pod's ingress).
    """
    _, t = node_trace(AKS, "10.224.0.4", "10.224.0.50", "10.0.0.10", 53, "udp")
    delivered = [o for o in t.outcomes if o.disposition == "delivered"]
    assert {o.endpoint for o in delivered} == {"10.224.0.23:53", "10.224.0.69:53"}
    assert {o.probability for o in delivered} == {Fraction(1, 2)}
    assert all(not o.masquerade and str(o.seen_source) == "10.224.0.50" for o in delivered)
    assert {o.disposition for o in t.outcomes} == {"delivered", "dropped"}
    assert all(not o.certain for o in t.outcomes)
    for o in t.outcomes:
        assert o.depends_on[0].endswith(f"({AKS}:384)")
        assert all("-m set --match-set azure-npm-" in d for d in o.depends_on)


def test_aks_pod_to_internet_is_masqueraded_by_ip_masq_agent() -> None:
    """Reading the same dump: 8.8.8.8 is no Service (KUBE-SERVICES ends with the NodePort jump,
    line 291, which needs a LOCAL destination), so the packet is forwarded unchanged; nat
    POSTROUTING line 113 sends non-LOCAL destinations to IP-MASQ-AGENT, none of whose RETURN
    ranges (lines 114-116: 10.224.0.0/12, 10.224.0.0/16, 10.0.0.0/16) holds 8.8.8.8, so
    line 117 masquerades: the far end sees the node, 10.224.0.4. AZURE-NPM egress rules
    (ipsets again) decide whether it leaves at all."""
    _, t = node_trace(AKS, "10.224.0.4", "10.224.0.50", "8.8.8.8", 443)
    passed = [o for o in t.outcomes if o.disposition == "passed"]
    assert passed and all(o.masquerade and str(o.seen_source) == "10.224.0.4" for o in passed)
    assert {o.disposition for o in t.outcomes} == {"passed", "dropped"}
    assert not any(o.certain for o in t.outcomes)


def test_aks_march_filter_pod_to_pod_forks_on_every_npm_set_rule() -> None:
    """aks-azure-npm-filter-2022-03.iptables-save (*filter only, iptables-save v1.6.1, an earlier
    azure-npm fixture: iptablessave-v2 at 0b49cfe7). A NEW pod-to-pod tcp/80 connection: FORWARD
    line 24 -> AZURE-NPM -> AZURE-NPM-INGRESS. Reading it:

    - line 46 (`-m set ... dst`, policy x/base) undecided. Not matching, line 47 needs mark
      0x4000 (unset), then AZURE-NPM-EGRESS: lines 36/37 (sets) undecided; when neither
      matches, lines 38/39 need marks that are not set, and AZURE-NPM-ACCEPT clears the mark
      and accepts at line 35 (so every forwarded NEW connection no policy selects is accepted
      here, before line 28's wireserver DROP);
    - 46 matching and neither 48 nor 49 (the allowed peers) matching: line 50 marks 0x4000 and
      line 47 drops;
    - 36 matching with 41/42 not matching: tcp/80 misses lines 43/44, line 45 marks 0x5000 and
      line 38 drops, also after 48 allowed it (line 51's 0x2000 is overwritten).
    Every branch names its set rules; none is certain."""
    got = hook(AKS_MARCH, "forward", "10.240.0.5", "10.240.0.9", "azure0", "azure0", 80)
    assert {b.disposition for b in got} == {"accept", "drop"}

    def path(b: Branch) -> tuple[tuple[int, bool], ...]:
        return tuple((int(a.rule.rsplit(":", 1)[-1].rstrip(")")), a.matches) for a in b.assumptions)

    def last(b: Branch) -> int | None:
        r = b.steps[-1].rule
        return r.loc.line if r is not None and r.loc is not None else None

    by_path = {path(b): (b.disposition, last(b)) for b in got}
    assert by_path[((46, False), (36, False), (37, False))] == ("accept", 35)
    assert by_path[((46, True), (48, False), (49, False))] == ("drop", 47)
    assert by_path[((46, True), (48, True), (36, True), (41, False), (42, False), (37, False))] \
        == ("drop", 38)
    assert by_path[((46, False), (36, True), (41, True))] == ("accept", 35)
    assert all(b.assumptions for b in got)
    assert all("azure-npm-" in u for b in got for a in b.assumptions for u in a.undecided)


def test_aks_march_filter_traces_standalone_from_the_cli() -> None:
    """The same flow through `trace --dump` (no cluster file): the dump is named azure-npm +
    kubelet, and every outcome is uncertain, its first undecided rule line 46."""
    res = cli("trace", "--dump", str(AKS_MARCH), "--node-ip", "10.240.0.4", "--node", "n",
              "--src", "10.240.0.5", "--dst", "10.240.0.9", "--dport", "80", "-o", "json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["dump"]["cni"] == ["azure-npm", "kubelet"]
    assert {o["disposition"] for o in doc["outcomes"]} == {"passed", "dropped"}
    assert all(o["certain"] is False for o in doc["outcomes"])
    assert all(o["depends_on"][0].endswith(f"({AKS_MARCH}:46)") for o in doc["outcomes"])


def test_aks_march_filter_host_input_is_certain() -> None:
    """INPUT has no set rule: tcp/22 from outside passes KUBE-NODEPORTS and
    KUBE-EXTERNAL-SERVICES (both empty) and KUBE-FIREWALL, policy ACCEPT; a packet from a pod
    to the node's 127.0.0.1 is dropped by line 54 (`! -s 127.0.0.0/8 -d 127.0.0.0/8 ... !
    --ctstate RELATED,ESTABLISHED,DNAT`), both certain."""
    assert verdicts(hook(AKS_MARCH, "input", "198.51.100.7", "10.240.0.4", "eth0", None, 22)) \
        == [("accept", False, ())]
    (b,) = hook(AKS_MARCH, "input", "10.240.0.5", "127.0.0.1", "eth0", None, 10248)
    assert (b.disposition, b.assumptions) == ("drop", ())
    assert b.steps[-1].rule is not None and b.steps[-1].rule.loc is not None
    assert b.steps[-1].rule.loc.line == 54


# ----------------------------------------------------------------------------- kind


def test_kind_pod_to_kube_dns_is_not_masqueraded() -> None:
    """kind-v1.23.5.iptables-save: 10.96.0.10:53/udp -> KUBE-SVC-TCOU7JCQXEZGVUNU, which sends
    half to KUBE-SEP-6E7XQMQ4RAYOWTTM (10.244.0.3:53) and the rest to KUBE-SEP-WXWGHGKZOCNYRYI7
    (10.244.0.4:53). The source 10.244.0.7 is in the cluster CIDR, so the `! -s 10.244.0.0/16`
    masquerade rule does not match; KIND-MASQ-AGENT returns for 10.244.0.0/16 destinations.
    Nothing undecidable on the path: both outcomes are certain."""
    res = cli("trace", "--dump", str(KIND), "--node-ip", "172.18.0.5", "--node", "n",
              "--src", "10.244.0.7", "--dst", "10.96.0.10", "--dport", "53", "--proto", "udp",
              "-o", "json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    got = sorted((o["endpoint"], o["probability"], o["masquerade"], o["seen_source"],
                  o["certain"]) for o in doc["outcomes"])
    assert got == [("10.244.0.3:53", 0.5, False, "10.244.0.7", True),
                   ("10.244.0.4:53", 0.5, False, "10.244.0.7", True)]


def test_kind_external_client_to_traefik_cluster_ip_is_masqueraded() -> None:
    """An off-cluster client to traefik's ClusterIP 10.96.237.231:80 through this node (172.18.0.5,
    the API server endpoint of `default/kubernetes`): line 115 `! -s 10.244.0.0/16 ... -j
    KUBE-MARK-MASQ` marks it (line 86 sets 0x4000), line 116 -> KUBE-SEP-242VRRB6CJESMF7F DNAT
    10.244.0.5:8000 (line 91), KUBE-FORWARD accepts the marked packet (line 36) and
    KUBE-POSTROUTING masquerades it (line 89): Traefik sees the node."""
    res = cli("trace", "--dump", str(KIND), "--node-ip", "172.18.0.5",
              "--from", "external=198.51.100.7", "--to", "10.96.237.231:80")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "outcome 1 (100%): DELIVERED to 10.244.0.5:8000" in out
    assert "the pod sees 172.18.0.5 (masqueraded" in out
    for n in (86, 91, 36, 89):
        assert f"{KIND}:{n}: -A " in out, n
    assert "uncertain" not in out


def test_kind_hairpin_to_itself_is_masqueraded() -> None:
    """Traefik's own pod 10.244.0.5 to its ClusterIP: DNAT back to 10.244.0.5:8000 (line 91),
    and line 90 `-A KUBE-SEP-242VRRB6CJESMF7F -s 10.244.0.5/32 -j KUBE-MARK-MASQ` marks the
    hairpin, so KUBE-POSTROUTING masquerades: the pod does not see its own address."""
    _, t = node_trace(KIND, "172.18.0.5", "10.244.0.5", "10.96.237.231", 80)
    (o,) = t.outcomes
    assert (o.endpoint, o.masquerade, o.certain) == ("10.244.0.5:8000", True, True)
    assert str(o.seen_source) != "10.244.0.5"


def test_kind_node_ip_is_not_in_the_dump_and_says_so() -> None:
    """kind's kube-proxy matches NodePorts by `--dst-type LOCAL` (line 113): the dump names no
    node address, so the standalone trace says it stands in TEST-NET-1 and asks for --node-ip."""
    res = cli("trace", "--dump", str(KIND), "--from", "external", "--to", "10.96.0.10:53",
              "--proto", "udp")
    assert res.returncode == 0, res.stderr
    assert "rules: kube-proxy iptables, before 1.24" in res.stdout
    assert "other chains: kubelet, docker, kind (kindnet)" in res.stdout
    assert "give --node-ip" in res.stdout and "192.0.2.1 (TEST-NET-1)" in res.stdout


@pytest.mark.tools
@pytest.mark.parametrize("dump", sorted(REAL.glob("*.iptables-save")), ids=lambda p: p.name)
def test_every_real_dump_loads_in_iptables_restore(dump: Path, tmp_path: Path) -> None:
    """The dumps are what iptables printed: each loads in the real `iptables-legacy-restore
    --test` (in a namespace of its own), once CR line ends are made LF and the rules that need
    kernel objects this machine lacks (ipsets no dump here creates) are left out."""
    restore = shutil.which("iptables-legacy-restore")
    if restore is None:
        pytest.skip("iptables-legacy-restore is not installed")
    text = dump.read_text().replace("\r", "\n")
    keep = [ln.strip() for ln in text.splitlines() if "--match-set" not in ln]
    f = tmp_path / "rules"
    f.write_text("\n".join(keep) + "\n")
    res = in_fresh_netns(restore, "--test", str(f))
    assert res.returncode == 0, res.stderr


# ----------------------------------------------------------------------------- Rancher 1.x


def test_cattle_published_port_is_dnated_then_dropped_in_forward() -> None:
    """rancher-cattle-docker.iptables-save (a Rancher 1.x "Cattle" host, pastebin bbWXHaTn):
    an outside client to the host's tcp/13001: nat PREROUTING line 19 -> CATTLE_PREROUTING,
    line 34 (`--dst-type LOCAL --dport 13001`) DNATs to 10.42.165.214:8080. filter FORWARD
    (policy DROP): line 56 `-o docker0 -j DOCKER` asks for the output device, which the dump
    does not name (FORWARD has one: the route's): it forks. Going to docker0, DOCKER's lines
    63/64 accept udp only and return; lines 58/59 need docker0 as the *input* device, which a
    packet from outside (the uplink) is not. Either way line 60 jumps to LOGGING_FORWARD
    where line 67 only logs (`-m limit ... -j LOG`, no verdict, so its undecidable `limit`
    needs no fork) and line 68 drops. Line 61 (`--dport 8080 -j ACCEPT`) is never reached:
    the published port is dropped whichever way line 56 goes (settled) — likely what its
    owner was asking about."""
    res = cli("trace", "--dump", str(CATTLE), "--node-ip", "192.0.2.10",
              "--from", "external=198.51.100.7", "--to", "192.0.2.10:13001", "-o", "json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert "rancher 1.x (cattle)" in doc["dump"]["cni"]
    got = {o["assumptions"][0]["matches"]: (o["disposition"], o["depends_on"][0],
                                            [s["loc"]["line"] for h in o["hops"]
                                             for s in h["steps"] if s["loc"]])
           for o in doc["outcomes"]}
    assert got[False] == ("dropped", f"-A FORWARD -o docker0 -j DOCKER ({CATTLE}:56)",
                          [19, 34, 60, 68])
    assert got[True] == ("dropped", f"-A FORWARD -o docker0 -j DOCKER ({CATTLE}:56)",
                         [19, 34, 56, 60, 68])
    assert doc["settled"]["disposition"] == "dropped"


def test_cattle_masquerade_with_to_ports_is_a_masquerade() -> None:
    """CATTLE_POSTROUTING line 27 `-s 10.42.0.0/16 ! -d 10.42.0.0/16 -p tcp -j MASQUERADE
    --to-ports 1024-65535`: the address is the egress interface's whatever the ports. It was
    an unknown action that was skipped, so the verdict came from line 29 by luck (and a dump
    without line 29 would have said "not masqueraded"). Docker's 172.17.0.0/16 masquerades at
    line 30 the same way; inside docker0 nothing is rewritten (line 23's `! -o docker0`)."""
    got = hook(CATTLE, "postrouting", "10.42.1.5", "8.8.8.8", None, "eth0")
    assert verdicts(got) == [("accept", True, ())]
    (b,) = got
    assert [s.rule.loc.line for s in b.steps if s.rule is not None and s.rule.loc] == [22, 27]
    (b,) = hook(CATTLE, "postrouting", "172.17.0.5", "8.8.8.8", None, "eth0")
    assert b.masquerade and [s.rule.loc.line for s in b.steps if s.rule and s.rule.loc] == [22, 30]
    assert verdicts(hook(CATTLE, "postrouting", "172.17.0.5", "172.17.0.6", None, "docker0")) \
        == [("accept", False, ())]


def test_cattle_host_firewall() -> None:
    """INPUT (policy DROP): tcp/22 accepted at line 48; tcp/25 reaches line 54 -> LOGGING,
    line 65 logs (no fork), line 66 drops."""
    assert verdicts(hook(CATTLE, "input", "198.51.100.7", "192.0.2.10", "eth0", None, 22)) == [("accept", False, ())]
    (b,) = hook(CATTLE, "input", "198.51.100.7", "192.0.2.10", "eth0", None, 25)
    assert b.disposition == "drop" and not b.assumptions
    assert b.steps[-1].rule is not None and b.steps[-1].rule.loc is not None
    assert b.steps[-1].rule.loc.line == 66


def test_log_only_rule_with_undecidable_match_does_not_fork() -> None:
    """A rule whose only action is LOG/NFLOG (non-terminating, packet untouched) gives the same
    answer matched or not; a rule with a real verdict and the same match still forks."""
    from sourceip.netfilter.parse_iptables import parse_iptables_save

    base = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n{}COMMIT\n"
    pkt = Packet(tuple=FiveTuple(proto="tcp", src=parse_ip("10.0.0.1"), sport=1,
                                 dst=parse_ip("10.0.0.2"), dport=80), iif="a", oif="b")
    for target, forks in (("LOG --log-prefix \"x: \"", False), ("NFLOG --nflog-group 86", False),
                          ("DROP", True)):
        rs = parse_iptables_save(base.format(f"-A FORWARD -m limit --limit 2/min -j {target}\n"))
        got = Evaluator(rs, ["192.0.2.1"]).run_hook("forward", pkt)
        assert (len(got) == 2) is forks, target
        if not forks:
            assert verdicts(got) == [("accept", False, ())]


# ----------------------------------------------------------------------------- Linux gateways


def test_openvpn_gateway_masquerades_the_lan_and_lets_the_internet_in() -> None:
    """openvpn-gateway.iptables-save (openvpn.eu, 2011): eth0 is the 192.168.0.0/16 side, eth1
    the uplink. A LAN client out: FORWARD line 33 (`-s 192.168.0.0/16 -i eth0`) accepts, nat
    line 16 (`-o eth1 -j MASQUERADE`) masquerades. From the internet to a LAN address: line 34
    (`-d 192.168.0.0/16 -i eth1 -j ACCEPT`) accepts any new connection, unmasqueraded — the
    rules do not limit inbound to replies. To a non-LAN address (10.8.0.5 on tun0), and from
    tun0 into the LAN: no ACCEPT, line 37 only logs, policy DROP (line 22). INPUT from the
    uplink to tcp/22: line 28 (`! -i eth0 ... --dport 0:1023 -j DROP`)."""
    assert verdicts(hook(GATEWAY, "forward", "192.168.1.10", "8.8.8.8", "eth0", "eth1", 443)) == [("accept", False, ())]
    assert verdicts(hook(GATEWAY, "postrouting", "192.168.1.10", "8.8.8.8", None, "eth1", 443)) == [("accept", True, ())]
    assert verdicts(hook(GATEWAY, "forward", "203.0.113.5", "192.168.1.10", "eth1", "eth0", 22)) == [("accept", False, ())]
    assert verdicts(hook(GATEWAY, "postrouting", "203.0.113.5", "192.168.1.10", None, "eth0", 22)) == [("accept", False, ())]
    assert verdicts(hook(GATEWAY, "forward", "203.0.113.5", "10.8.0.5", "eth1", "tun0", 22)) == [("drop", False, ())]
    assert verdicts(hook(GATEWAY, "forward", "10.8.0.6", "192.168.1.10", "tun0", "eth0", 22)) == [("drop", False, ())]
    (b,) = hook(GATEWAY, "input", "203.0.113.5", "192.0.2.1", "eth1", None, 22)
    assert b.disposition == "drop" and b.steps[-1].rule is not None
    assert b.steps[-1].rule.loc is not None and b.steps[-1].rule.loc.line == 28


def test_home_router_masquerades_the_lan_and_drops_the_rest() -> None:
    """home-router-ppp0.iptables-save (rlworkman.net, 2015), all policies DROP. LAN
    192.168.13.20 to a web server on ppp0: State (line 31) passes a NEW packet on, line 32's
    port list lacks 443, line 34 accepts; nat line 16 masquerades. To tcp/445 line 32 also
    needs `--tcp-flags FIN,SYN,RST,ACK SYN`: a new connection's first packet is that SYN, so
    line 32 rejects it (it forked on the flags before they were decided; see
    test_tcp_flags_of_a_first_packet_are_decided). From the internet to the router's tcp/22:
    BadStuff returns, State does not accept NEW, policy DROP; a bogon source (10.1.2.3 on
    ppp0) is dropped by line 40. From the LAN to its ssh: line 49 (`--tcp-flags ...
    --ctstate NEW -j ACCEPT`) accepts. The router's own DNS query out of ppp0: line 39."""
    assert verdicts(hook(ROUTER, "forward", "192.168.13.20", "93.184.216.34", "eth0", "ppp0", 443)) == [("accept", False, ())]
    assert verdicts(hook(ROUTER, "postrouting", "192.168.13.20", "93.184.216.34", None, "ppp0", 443)) == [("accept", True, ())]
    assert verdicts(hook(ROUTER, "forward", "192.168.13.20", "93.184.216.34", "eth0", "ppp0", 445)) == [("reject", False, ())]
    assert verdicts(hook(ROUTER, "input", "198.51.100.7", "192.0.2.1", "ppp0", None, 22)) == [("drop", False, ())]
    (b,) = hook(ROUTER, "input", "10.1.2.3", "192.0.2.1", "ppp0", None, 22)
    assert b.steps[-1].rule is not None and b.steps[-1].rule.loc is not None
    assert b.steps[-1].rule.loc.line == 40
    assert verdicts(hook(ROUTER, "input", "192.168.13.20", "192.0.2.1", "eth0", None, 22)) == [("accept", False, ())]
    assert verdicts(hook(ROUTER, "output", "192.0.2.1", "8.8.8.8", None, "ppp0", 53)) == [("accept", False, ())]


# ----------------------------------------------------------------------------- kube-router


KUBE_ROUTER_SETS = REAL / "kube-router-ipset-save.txt"


@pytest.mark.parametrize("match, src, dst, dport, proto, expected", [
    # kube-router-svip-prt lists 10.96.0.10,tcp:9153 (line 28) and 10.96.0.10,udp:53 (line 35)
    ("-m set --match-set kube-router-svip-prt dst,dst", "10.242.0.5", "10.96.0.10", 53, "udp", True),
    ("-m set --match-set kube-router-svip-prt dst,dst", "10.242.0.5", "10.96.0.10", 54, "udp", False),
    ("-m set --match-set kube-router-svip-prt dst,dst", "10.242.0.5", "10.96.0.10", 9153, "tcp", True),
    # kube-router-pod-subnets: 10.242.0.0/24 and 10.242.1.0/24 (lines 8-9)
    ("-m set --match-set kube-router-pod-subnets src", "10.242.1.77", "8.8.8.8", 443, "tcp", True),
    ("-m set ! --match-set kube-router-pod-subnets src", "10.242.2.1", "8.8.8.8", 443, "tcp", True),
    # KUBE-SRC-C2EUPKL23CCP4COF is created empty (line 57): nothing is in it
    ("-m set --match-set KUBE-SRC-C2EUPKL23CCP4COF src", "10.242.0.5", "10.96.0.1", 443, "tcp", False),
    # hash:net KUBE-SRC-KLLOHJLFVAV654Z2 holds one address, 10.95.0.239 (line 62)
    ("-m set --match-set KUBE-SRC-KLLOHJLFVAV654Z2 src", "10.95.0.239", "10.96.0.1", 443, "tcp", True),
    ("-m set --match-set KUBE-SRC-KLLOHJLFVAV654Z2 src", "10.95.0.238", "10.96.0.1", 443, "tcp", False),
])
def test_kube_router_ipset_dump_decides_set_matches(match: str, src: str, dst: str, dport: int,
                                                    proto: str, expected: bool) -> None:
    """kube-router-ipset-save.txt (an `ipset save` of a dual-stack kube-router node: `inet6:`
    set names, `timeout 0`, `bucketsize`/`initval`): read as a dump, it decides `-m set`
    matches exactly — membership as listed, ports per protocol, an empty set never matching."""
    from sourceip.netfilter.ipset import parse_set_match, set_match

    nd = load_node_dumps([str(KUBE_ROUTER_SETS)])
    assert len(nd.ipsets) == 17 and nd.ruleset is None
    assert nd.ipsets["inet6:kube-router-svip"].family == "inet6"
    m = parse_set_match(match)
    assert m is not None
    t = FiveTuple(proto=proto, src=parse_ip(src), sport=40000, dst=parse_ip(dst), dport=dport)
    assert set_match(m, nd.ipsets, t) is expected


def test_kube_router_ipsets_alone_are_refused_with_what_to_add() -> None:
    res = cli("trace", "--dump", str(KUBE_ROUTER_SETS), "--from", "external",
              "--to", "10.96.0.10:53", "--proto", "udp")
    assert res.returncode == 1
    assert "the dumps hold no rules (ipsets or IPVS only)" in res.stderr
    assert "Traceback" not in res.stderr


# ----------------------------------------------------------------------------- fixes found


IPRANGE = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -s 10.0.0.1/32 -m iprange ! --dst-range 10.0.0.0-10.255.255.255 -j ACCEPT
-A FORWARD -m iprange --src-range 192.168.1.10-192.168.1.20 --dst-range 10.0.0.5-10.0.0.5 -j ACCEPT
-A FORWARD -m iprange --src-range 10.0.0.9-10.0.0.1 -j ACCEPT
COMMIT
"""


def test_iprange_is_decided_not_forked() -> None:
    """A Docker host's dump (diekmann/Iptables_Semantics docker_topos, no longer kept) used
    `-m iprange ! --dst-range`: it was an unknown match, so every packet forked on it. Now decided (bounds inclusive, negation honoured); a range the kernel
    would refuse (lo > hi) stays an unknown match that forks, with its text kept."""
    from sourceip.netfilter.ir import AddrRange, UnknownMatch
    from sourceip.netfilter.parse_iptables import parse_iptables_save
    from sourceip.netfilter.render_iptables import render_iptables

    rs = parse_iptables_save(IPRANGE, source="r")
    rules = rs.tables[0].chain("FORWARD").rules  # type: ignore[union-attr]
    assert [m for m in rules[0].matches if isinstance(m, AddrRange)] == [
        AddrRange("dst", parse_ip("10.0.0.0"), parse_ip("10.255.255.255"), True)]
    assert isinstance(rules[2].matches[0], UnknownMatch)
    assert "-m iprange ! --dst-range 10.0.0.0-10.255.255.255" in render_iptables(rs)
    assert "-m iprange --src-range 192.168.1.10-192.168.1.20 --dst-range 10.0.0.5-10.0.0.5" \
        in render_iptables(rs)
    ev = Evaluator(rs, ["192.0.2.1"])

    def fwd(src: str, dst: str) -> list[tuple[str, int]]:
        pkt = Packet(tuple=FiveTuple(proto="tcp", src=parse_ip(src), sport=1, dst=parse_ip(dst),
                                     dport=80), iif="a", oif="b")
        return sorted((b.disposition, len(b.assumptions)) for b in ev.run_hook("forward", pkt))

    assert fwd("10.0.0.1", "11.0.0.1") == [("accept", 0)]          # outside 10/8: line 1
    assert fwd("10.0.0.1", "10.255.255.255") == [("accept", 1), ("drop", 1)]  # inside: on to line 3's fork
    assert fwd("192.168.1.10", "10.0.0.5") == [("accept", 0)]      # both bounds inclusive
    assert fwd("192.168.1.20", "10.0.0.5") == [("accept", 0)]
    assert fwd("192.168.1.21", "10.0.0.5") == [("accept", 1), ("drop", 1)]  # only line 3 (unknown) left


@pytest.mark.tools
def test_iprange_renders_as_iptables_save_prints_it() -> None:
    """What render_iptables writes for AddrRange loads in the real iptables and lists back as the
    same rules (one `-m iprange` holding both ranges, as iptables-save prints it)."""
    from sourceip.netfilter.parse_iptables import parse_iptables_save
    from sourceip.netfilter.render_iptables import render_iptables

    restore, save = shutil.which("iptables-legacy-restore"), shutil.which("iptables-legacy-save")
    if restore is None or save is None:
        pytest.skip("iptables-legacy-restore/-save are not installed")
    text = IPRANGE.rsplit("-A FORWARD -m iprange --src-range 10.0.0.9", 1)[0] + "COMMIT\n"
    rs = parse_iptables_save(text)
    # restore and save in one namespace of their own
    res = in_fresh_netns("sh", "-c", f"{restore} && {save} -t filter", stdin=render_iptables(rs))
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "--src-range 192.168.1.10-192.168.1.20 --dst-range 10.0.0.5-10.0.0.5" in out
    listed = parse_iptables_save(out).table("filter")
    assert listed is not None and rs.tables[0].chain("FORWARD") is not None
    assert [(r.matches, r.actions) for r in listed.chain("FORWARD").rules] == [  # type: ignore[union-attr]
        (r.matches, r.actions) for r in rs.tables[0].chain("FORWARD").rules]  # type: ignore[union-attr]


def test_json_steps_carry_the_dump_line() -> None:
    """Issue #10 item 4: a JSON step through a dump says where its rule was read, with the line
    as the dump wrote it. kind's DNAT for traefik:web is line 91; the MASQUERADE line 89 keeps
    `--random-fully`; KUBE-MARK-MASQ (line 86) keeps `--set-xmark 0x4000/0x4000`, which
    sourceip's own rendering (`rule`) writes as `--or-mark 0x4000`."""
    res = cli("trace", "--dump", str(KIND), "--node-ip", "172.18.0.5",
              "--from", "external=198.51.100.7", "--to", "10.96.237.231:80", "-o", "json")
    assert res.returncode == 0, res.stderr
    (o,) = json.loads(res.stdout)["outcomes"]
    steps = [s for h in o["hops"] for s in h["steps"]]
    lines = KIND.read_text().splitlines()
    located = {s["loc"]["line"]: s for s in steps if s["loc"] is not None}
    assert {86, 89, 91} <= set(located)
    for n, s in located.items():
        assert s["loc"] == {"file": str(KIND), "line": n, "text": lines[n - 1], "item": None}
    assert located[86]["rule"] != located[86]["loc"]["text"]  # ours vs the dump's
    assert all(s["loc"] is None for s in steps if s["index"] == -1)  # chain policies


@pytest.mark.parametrize("target, ports", [
    ("MASQUERADE --to-ports 1024-65535", "1024-65535"),
    ("MASQUERADE --to-ports 8080 --random-fully", "8080"),
    ("MASQUERADE --to-ports 0-5", None),      # port 0: iptables refuses it; kept unknown
    ("MASQUERADE --to-ports 9-3", None),
    ("MASQUERADE --to-ports x", None),
])
def test_masquerade_to_ports_parses_and_renders(target: str, ports: str | None) -> None:
    from sourceip.netfilter.ir import Chain, Masquerade, Ruleset, Table, UnknownAction
    from sourceip.netfilter.parse_iptables import parse_iptables_save
    from sourceip.netfilter.render_iptables import render_iptables
    from sourceip.netfilter.render_nft import NftRenderError, render_nft

    text = ("*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
            f":POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -s 10.42.0.0/16 -j {target}\nCOMMIT\n")
    rs = parse_iptables_save(text)
    (rule,) = rs.tables[0].chain("POSTROUTING").rules  # type: ignore[union-attr]
    (act,) = rule.actions
    if ports is None:
        assert isinstance(act, UnknownAction)
        return
    assert act == Masquerade("--random-fully" in target, ports)
    assert f"-j {target}" in render_iptables(rs)
    nft = Ruleset("nftables", (Table(name="t", family="ip",
                                     chains=(Chain(name="c", rules=(rule,)),)),))
    with pytest.raises(NftRenderError, match="--to-ports"):  # not written as nft (see ir.py)
        render_nft(nft)


@pytest.mark.parametrize("content, words", [
    # what people paste instead of iptables-save: `iptables -t nat -S`, a grep of the dump
    ("-P PREROUTING ACCEPT\n-N KUBE-SERVICES\n-A PREROUTING -j KUBE-SERVICES\n",
     ":1: `iptables -S` output (no table named, no counters): give `iptables-save`"),
    ("-A KUBE-SERVICES -d 10.96.0.10/32 -p udp -m udp --dport 53 -j KUBE-SVC-X\n",
     ":1: rule or chain before any *table line (`iptables -S` output or a grep of iptables-save?"),
])
def test_partial_pastes_say_what_to_give(tmp_path: Path, content: str, words: str) -> None:
    f = tmp_path / "paste.txt"
    f.write_text(content)
    res = cli("trace", "--dump", str(f), "--from", "external", "--to", "10.96.0.10:53")
    assert res.returncode == 1 and words in res.stderr and "Traceback" not in res.stderr


UNMODELLED = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d 192.0.2.1/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.1.1.1-10.1.1.9
-A PREROUTING -p tcp -m tcp --dport 9090 -j LOG --log-prefix "x: "
COMMIT
"""


def test_an_unmodelled_action_makes_the_outcome_uncertain(tmp_path: Path) -> None:
    """Issue #10 item 4: an action the evaluator cannot apply (here DNAT to an address range)
    used to be skipped silently, so the trace said for certain that the packet reached the
    node itself. Now the walk still goes on past it, but the outcome is uncertain and names
    the rule (file:line) as 'doing nothing'; a logging target stays certain."""
    f = tmp_path / "nat.rules"
    f.write_text(UNMODELLED)
    res = cli("trace", "--dump", str(f), "--node-ip", "192.0.2.1",
              "--from", "external=198.51.100.7", "--to", "192.0.2.1:8080", "-o", "json")
    assert res.returncode == 0, res.stderr
    (o,) = json.loads(res.stdout)["outcomes"]
    assert o["certain"] is False
    assert o["depends_on"] == [
        f"-A PREROUTING -d 192.0.2.1/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination "
        f"10.1.1.1-10.1.1.9 ({f}:6)"]
    (a,) = o["assumptions"]
    assert a["undecided"] == ["action -j DNAT --to-destination 10.1.1.1-10.1.1.9 not modelled"]
    text = cli("trace", "--dump", str(f), "--node-ip", "192.0.2.1",
               "--from", "external=198.51.100.7", "--to", "192.0.2.1:8080").stdout
    assert "doing nothing (its action is not modelled)" in text
    res = cli("trace", "--dump", str(f), "--node-ip", "192.0.2.1",
              "--from", "external=198.51.100.7", "--to", "192.0.2.1:9090", "-o", "json")
    (o,) = json.loads(res.stdout)["outcomes"]
    assert o["certain"] is True  # -j LOG: no verdict, packet untouched


def test_a_vmap_that_cannot_be_read_makes_the_outcome_uncertain(tmp_path: Path) -> None:
    """A verdict map the dump does not hold (a partial `nft list chain` paste) used to be a
    note, the packet going on as if no element matched; now the outcome names the rule."""
    f = tmp_path / "chain.nft"
    f.write_text("table ip t {\n\tchain pre {\n\t\ttype nat hook prerouting priority dstnat; "
                 "policy accept;\n\t\tip daddr . meta l4proto . th dport vmap @service-ips\n"
                 "\t}\n}\n")
    res = cli("trace", "--dump", str(f), "--node-ip", "192.0.2.1",
              "--from", "external=198.51.100.7", "--to", "192.0.2.1:8080", "-o", "json")
    assert res.returncode == 0, res.stderr
    (o,) = json.loads(res.stdout)["outcomes"]
    assert o["certain"] is False and o["depends_on"][0].endswith(f"({f}:4)")
    assert o["assumptions"][0]["undecided"] == ["action vmap @service-ips: no such map"]


@pytest.mark.parametrize("match, ct, expected", [
    ("--tcp-flags FIN,SYN,RST,ACK SYN", "NEW", "drop"),
    ("! --tcp-flags FIN,SYN,RST,ACK SYN", "NEW", "accept"),
    ("--syn", "NEW", "drop"),
    ("! --syn", "NEW", "accept"),
    ("--tcp-flags SYN,RST SYN,RST", "NEW", "accept"),      # a SYN has no RST
    ("--tcp-flags FIN,ACK NONE", "NEW", "drop"),           # neither FIN nor ACK set
    ("--tcp-flags ALL SYN", "NEW", "fork"),                # ALL includes ECE/CWR: unknown
    ("--tcp-flags SYN,ECE SYN", "NEW", "fork"),
    ("--tcp-flags FIN,SYN,RST,ACK SYN", "ESTABLISHED", "fork"),  # a later packet
])
def test_tcp_flags_of_a_first_packet_are_decided(match: str, ct: str, expected: str) -> None:
    """A trace follows a connection's first packet, a SYN (flags SYN; ECE/CWR possibly set by
    ECN setup): `-m tcp --tcp-flags MASK COMP` and `--syn` are decided for it (xt_tcpudp:
    `(flags & mask) == comp`); masks naming ALL/ECE/CWR, and later packets, still fork."""
    from sourceip.netfilter.parse_iptables import parse_iptables_save

    rs = parse_iptables_save("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n"
                             ":OUTPUT ACCEPT [0:0]\n"
                             f"-A FORWARD -p tcp -m tcp {match} -j DROP\nCOMMIT\n")
    pkt = Packet(tuple=FiveTuple(proto="tcp", src=parse_ip("10.0.0.1"), sport=1,
                                 dst=parse_ip("10.0.0.2"), dport=80), iif="a", oif="b")
    got = Evaluator(rs, ["192.0.2.1"]).run_hook("forward", pkt, ct_state=[ct])
    if expected == "fork":
        assert sorted(b.disposition for b in got) == ["accept", "drop"]
    else:
        assert [(b.disposition, b.assumptions) for b in got] == [(expected, ())]


# a kube-proxy nat table as a dump that went through an old Mac editor: every line ends in a
# bare CR (no LF) and starts with a space
BARE_CR = "\r".join(" " + ln for ln in [
    "# Generated by iptables-save v1.8.4",
    "*nat",
    ":PREROUTING ACCEPT [0:0]",
    ":INPUT ACCEPT [0:0]",
    ":OUTPUT ACCEPT [0:0]",
    ":POSTROUTING ACCEPT [0:0]",
    ":KUBE-SERVICES - [0:0]",
    ":KUBE-SVC-TCOU7JCQXEZGVUNU - [0:0]",
    ":KUBE-SEP-A - [0:0]",
    ":KUBE-SEP-B - [0:0]",
    "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
    "-A KUBE-SEP-A -p udp -m udp -j DNAT --to-destination 10.224.0.15:53",
    "-A KUBE-SEP-B -p udp -m udp -j DNAT --to-destination 10.224.0.41:53",
    "-A KUBE-SERVICES -d 10.0.0.10/32 -p udp -m udp --dport 53 -j KUBE-SVC-TCOU7JCQXEZGVUNU",
    "-A KUBE-SVC-TCOU7JCQXEZGVUNU -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-A",
    "-A KUBE-SVC-TCOU7JCQXEZGVUNU -j KUBE-SEP-B",
    "COMMIT",
]) + "\r"


def test_dump_with_bare_cr_line_ends_is_read_like_any_other(tmp_path: Path) -> None:
    """An AKS node's dump was published with a bare CR after every line and a space before each
    (azure-container-networking's iptablesave-v1 fixture, no longer kept): it is read like any
    other, and steps name the dump's lines counted by CR: the DNATs are lines 12 and 13."""
    f = tmp_path / "cr.iptables-save"
    f.write_bytes(BARE_CR.encode())
    res = cli("trace", "--dump", str(f), "--node-ip", "10.224.0.4", "--node", "n",
              "--src", "10.224.0.50", "--dst", "10.0.0.10", "--dport", "53", "--proto", "udp",
              "-o", "json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["dump"]["kube_proxy"].startswith("kube-proxy iptables")
    got = sorted((o["endpoint"], o["probability"], o["certain"]) for o in doc["outcomes"])
    assert got == [("10.224.0.15:53", 0.5, True), ("10.224.0.41:53", 0.5, True)]
    for o in doc["outcomes"]:
        (dnat,) = [s["loc"] for h in o["hops"] for s in h["steps"]
                   if s["loc"] and "DNAT" in s["loc"]["text"]]
        want = 12 if o["endpoint"] == "10.224.0.15:53" else 13
        assert dnat == {"file": str(f), "line": want, "item": None,
                        "text": BARE_CR.split("\r")[want - 1].strip()}


RECENT = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:CUSTOM - [0:0]
-A FORWARD -i br0 -j CUSTOM
-A FORWARD -s 10.0.0.1/32 -i br0 -j ACCEPT
-A CUSTOM
-A CUSTOM -p tcp -m tcp --dport 80 -m state --state NEW -m recent --set --name DEFAULT --mask 255.255.255.255 --rsource
-A CUSTOM -p tcp -m tcp --dport 80 -m state --state NEW -m recent --update --seconds 60 --hitcount 3 --name DEFAULT --mask 255.255.255.255 --rsource -j DROP
COMMIT
"""


def test_recent_rate_limit_forks_and_rules_without_target_do_nothing() -> None:
    """The shape of a Docker host's rate limit (diekmann/Iptables_Semantics docker_topos, no
    longer kept): line 8 (`-A CUSTOM`, no match, no target) and line 9 (`-m recent --set`, no
    target) change nothing; line 10 `-m recent --update --seconds 60 --hitcount 3 ... -j DROP`
    depends on how often the source connected in the last minute, undecidable from a dump: one
    branch drops, the other returns to line 7 and is accepted. Port 443 skips line 10: the
    packet is accepted for certain; 10.0.0.2 has no ACCEPT: policy DROP, certain."""
    from sourceip.netfilter.parse_iptables import parse_iptables_save

    rs = parse_iptables_save(RECENT, source="r")
    ev = Evaluator(rs, ["192.0.2.1"])

    def fwd(src: str, dport: int) -> list[Branch]:
        pkt = Packet(tuple=FiveTuple(proto="tcp", src=parse_ip(src), sport=1,
                                     dst=parse_ip("93.184.216.34"), dport=dport),
                     iif="br0", oif="eth0")
        return ev.run_hook("forward", pkt)

    got = fwd("10.0.0.1", 80)
    assert {b.disposition for b in got} == {"accept", "drop"}
    for b in got:
        (a,) = b.assumptions
        assert a.rule.endswith("(r:10)") and "-m recent --update" in a.undecided[0]
        assert a.matches == (b.disposition == "drop")
    assert verdicts(fwd("10.0.0.1", 443)) == [("accept", False, ())]
    assert verdicts(fwd("10.0.0.2", 443)) == [("drop", False, ())]


def test_alike_small_chains_of_two_dumps_keep_their_own_lines(tmp_path: Path) -> None:
    """Found tracing the two AKS captures in one process: compiled small chains are shared
    between equal chains, and `Rule ==` ignores where a rule was read, so the second dump's
    ACCEPT step named the first dump's file and line. Each dump's steps name its own."""
    body = ":INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:ACC - [0:0]\n"
    rules = "-A FORWARD -j ACC\n-A ACC -j ACCEPT\nCOMMIT\n"
    a, b = tmp_path / "a.rules", tmp_path / "b.rules"
    a.write_text("*filter\n" + body + rules)
    b.write_text("# Generated by iptables-save\n\n*filter\n" + body + rules)
    for f, line in ((a, 7), (b, 9), (a, 7)):
        (br,) = hook(f, "forward", "10.0.0.1", "10.0.0.2", "eth0", "eth1")
        r = br.steps[-1].rule
        assert br.disposition == "accept" and r is not None and r.loc is not None
        assert (r.loc.file, r.loc.line) == (str(f), line)
