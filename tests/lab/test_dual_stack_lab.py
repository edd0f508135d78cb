"""IPv6 and dual-stack clusters in the lab (issue #12): ``sourceip lab run --example dual-stack``
builds both families in namespaces (``lab/ipv6.py``), loads each family's kube-proxy rules
(``ip6tables-restore`` / the ``ip6 kube-proxy`` table beside the IPv4 ones) and probes every
explain path of both families; all must agree, in iptables (both back ends) and nftables modes,
and for the routed and tunnel CNI profiles. An IPv6-only cluster is built without IPv4.

The plan tests need no root."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from tests.conftest import in_netns

from sourceip.lab.lb import pool_config
from sourceip.lab.model import LabLoadBalancer, LBCheck
from sourceip.lab.plan import default_probe_specs, plan_lab, render_script
from sourceip.sources import example_text, load_example

from .gen_clusters import generate
from .helpers import lab_skip_reason
from .test_hygiene import _env

needs_lab = pytest.mark.skipif(lab_skip_reason() is not None, reason=str(lab_skip_reason()))
RUN = "d5a1c0"


def _setup(plan, suffix: str):  # type: ignore[no-untyped-def]
    return next(s for s in plan.setups if s.ns.endswith(suffix))


def test_a_dual_stack_plan_builds_both_families() -> None:
    plan = plan_lab(load_example("dual-stack"), runid=RUN)
    assert plan.families == (4, 6)
    assert plan.external_ip == "192.168.100.2" and plan.external_ip6 == "2001:db8:ffff::10"
    node1 = _setup(plan, "-n0-node1")
    assert "addr add 10.0.0.11/24 dev eth0" in node1.ip
    assert node1.ip6[:2] == ("addr add fd00:10::11/64 dev eth0 nodad",
                             "route add default via fd00:10::1")
    assert "addr add fd00:10:244:1::1/64 dev cni0 nodad" in node1.ip6
    assert "route add fd00:10:244:2::/64 via fd00:10::12" in node1.ip6
    assert [(x.label, x.argv) for x in node1.loads] == [
        ("kube-proxy", ("iptables-legacy-restore",)),
        ("kube-proxy IPv6", ("ip6tables-legacy-restore",))]
    assert "-A KUBE-SERVICES" in node1.loads[1].text and "fd00:10:96::100" in node1.loads[1].text
    sysctls = {s.path: s.value for s in node1.sysctls}
    assert sysctls["net/ipv6/conf/all/forwarding"] == "1"
    assert sysctls["net/ipv6/icmp/ratemask"] == ""
    assert sysctls["net/bridge/bridge-nf-call-ip6tables"] == "1"
    server = _setup(plan, "-p0-default.server")
    assert server.ip6 == ("addr add fd00:10:244:1::10/64 dev eth0 nodad",
                          "route add default via fd00:10:244:1::1")
    rtr = _setup(plan, "-rtr")
    assert "route add fd00:10:96::100/128 via fd00:10::11" in rtr.ip6
    assert "rule add from 2001:db8:ffff::10 sport 20100-20199 lookup 1001 pref 1001" in rtr.ip6
    assert _setup(plan, "-ext").ip6 == ("addr add 2001:db8:ffff::10/64 dev eth0 nodad",
                                        "route add default via 2001:db8:ffff::1")
    nft = plan_lab(load_example("dual-stack"), runid=RUN, mode="nftables")
    loads = _setup(nft, "-n0-node1").loads
    assert [x.argv for x in loads] == [("nft", "-f", "-")] * 2
    assert "add table ip6 kube-proxy" in loads[1].text
    legacy_nft = plan_lab(load_example("dual-stack"), runid=RUN, iptables_backend="nft")
    assert _setup(legacy_nft, "-n0-node1").loads[1].argv == ("ip6tables-nft-restore",)
    script = render_script(plan)
    assert "ip -6 -n sip-d5a1c0-n0-node1 addr add fd00:10::11/64 dev eth0 nodad" in script
    assert "ip netns exec sip-d5a1c0-n0-node1 ip6tables-legacy-restore <<'SIP_EOF'" in script


def test_routed_and_tunnel_profiles_in_ipv6() -> None:
    c = load_example("dual-stack")
    routed = plan_lab(c.with_(profile=replace(c.profile, pod_attach="routed",
                                              inter_node="tunnel")), runid=RUN)
    node1 = _setup(routed, "-n0-node1")
    host_if = next(line.split()[2] for line in node1.ip if line.startswith("link set cali"))
    assert f"addr add fe80::1/64 dev {host_if} nodad" in node1.ip6
    assert f"route add fd00:10:244:1::10/128 dev {host_if}" in node1.ip6
    assert "route add blackhole fd00:10:244:1::/64" in node1.ip6
    assert any(line.startswith("link add flannel-v6.1 ") and "local fd00:10::11" in line
               for line in node1.ip6)
    assert "addr add fd00:10:244:1::/128 dev flannel-v6.1 nodad" in node1.ip6
    assert "route add fd00:10:244:2::/64 via fd00:10:244:2:: dev flannel-v6.1 onlink" in node1.ip6
    assert any("dev flannel-v6.1 dst fd00:10::12 self permanent" in b for b in node1.bridge)
    assert _setup(routed, "-p0-default.server").ip6 == (
        "addr add fd00:10:244:1::10/128 dev eth0 nodad",
        "route add default via fe80::1 dev eth0")


def test_an_ipv6_only_plan_has_no_ipv4() -> None:
    plan = plan_lab(generate(5, family="6").cluster, runid=RUN)
    assert plan.families == (6,)
    assert plan.external_ip == plan.external_ip6 == "2001:db8:ffff::10"
    for s in plan.setups:
        assert not any("addr add 10." in line or "192.168." in line for line in s.ip), s.ns
    assert all(x.label == "kube-proxy IPv6" for s in plan.setups for x in s.loads)


def test_load_balancers_per_family_plan() -> None:
    """``dual-stack-lb``: a forwarding LB per family of the dual-stack Service (ECMP routes in
    each family, health checks over each family's node addresses, one health server per node
    bound on ``::``) and a proxying IPv6 LB (haproxy on ``[VIP]:80``, connecting from an IPv6
    source to the nodes' IPv6 NodePorts)."""
    plan = plan_lab(load_example("dual-stack-lb"), runid=RUN)
    lbs = {lb.vip: lb for lb in plan.load_balancers}
    assert list(lbs) == ["172.18.255.10", "fd00:18:255::10", "fd00:18:255::40"]
    web6 = lbs["fd00:18:255::10"]
    assert [(c.id, c.node_ip, c.kind, c.port, c.predicted) for c in web6.checks] == [
        ("default/web node1 IPv6", "fd00:10::11", "http", 32000, "200"),
        ("default/web node2 IPv6", "fd00:10::12", "http", 32000, "200"),
        ("default/web node3 IPv6", "fd00:10::13", "http", 32000, "503")]
    assert [c.id for c in lbs["172.18.255.10"].checks][0] == "default/web node1"
    echo = lbs["fd00:18:255::40"]
    assert (echo.mode, echo.target, echo.source_address) == ("proxying", "nodePort",
                                                             "fd00:10::250")
    assert [(c.target, c.predicted) for c in echo.checks] == [
        ("[fd00:10::11]:31100", "open"), ("[fd00:10::12]:31100", "open"),
        ("[fd00:10::13]:31100", "open")]
    ip_lines, nft, haproxy = pool_config(plan.load_balancers, None, workdir=plan.workdir,
                                         router_ns="r")
    assert ip_lines == [
        "route replace 172.18.255.10/32 nexthop via 10.0.0.11 nexthop via 10.0.0.12",
        "route replace fd00:18:255::10/128 nexthop via fd00:10::11 nexthop via fd00:10::12"]
    assert nft == "" and haproxy is not None
    cfg = haproxy.files[0][1]
    assert "    bind [fd00:18:255::40]:80\n" in cfg and "    source [fd00:10::250]\n" in cfg
    assert "    server node3 [fd00:10::13]:31100 send-proxy-v2\n" in cfg
    # observed: node2 fails its IPv6 check only; the IPv4 pool keeps it
    observed = {c.id: c.predicted for lb in plan.load_balancers for c in lb.checks}
    observed["default/web node2 IPv6"] = "503"
    assert pool_config(plan.load_balancers, observed, workdir=plan.workdir,
                       router_ns="r")[0][1] == "route replace fd00:18:255::10/128 via fd00:10::11"
    rtr = _setup(plan, "-rtr")
    assert {"addr add fd00:18:255::40/128 dev lo nodad",
            "addr add fd00:10::250/64 dev nodes nodad"} <= set(rtr.ip6)
    assert {s.path for s in rtr.sysctls} >= {"net/ipv4/fib_multipath_hash_policy",
                                             "net/ipv6/fib_multipath_hash_policy"}
    health = next(p for p in plan.processes if p.role == "health" and p.node == "node3")
    listen = json.loads(health.files[0][1])["listen"]
    assert [(e["port"], e["address"]) for e in listen] == [(32000, "::"), (10256, "::")]
    assert listen[0]["responses"]["*"]["status"] == 503


def test_forwarding_to_ipv6_node_ports_is_an_ip6_dnat(scratch_netns: str) -> None:
    """A forwarding LB that targets NodePorts (Azure without floating IP) DNATs in an ``ip6``
    table for an IPv6 VIP; the script passes ``nft -c`` in a scratch namespace."""
    lb = LabLoadBalancer(
        service="default/web", title="t", vip="fd00:18:255::10", port=80, mode="forwarding",
        target="nodePort", target_port=31080, proxy_protocol=None, source_address=None,
        checks=tuple(LBCheck(service="default/web", node=n, node_ip=ip, kind="none",
                             port=None, path="", predicted="-", candidate=True,
                             target=f"[{ip}]:31080", family=6)
                     for n, ip in (("node1", "fd00:10::11"), ("node2", "fd00:10::12"))))
    _, nft, _ = pool_config([lb], None, workdir="/tmp/x", router_ns="r")
    assert ("add rule ip6 sourceip-lb prerouting ip6 daddr fd00:18:255::10 tcp dport 80 "
            "dnat ip6 to numgen random mod 2 map { 0 : fd00:10::11 . 31080, "
            "1 : fd00:10::12 . 31080 }") in nft
    if shutil.which("nft") is None:
        pytest.skip("the nft binary is not installed")
    res = in_netns(scratch_netns, "nft", "-c", "-f", "-", stdin=nft)
    assert res.returncode == 0, res.stderr


def test_hostports_per_family_plan() -> None:
    """``dual-stack-hostnetwork``: the portmap plugin's IPv6 rules are loaded after
    kube-proxy's IPv6 ones (``ip6tables-restore --noflush`` / table ``ip6 cni_hostport``),
    without a localhost rule or route_localnet for IPv6."""
    plan = plan_lab(load_example("dual-stack-hostnetwork"), runid=RUN)
    node1 = _setup(plan, "-n0-node1")
    assert [(x.label, x.argv) for x in node1.loads] == [
        ("kube-proxy", ("iptables-legacy-restore",)),
        ("kube-proxy IPv6", ("ip6tables-legacy-restore",)),
        ("cni-portmap", ("iptables-legacy-restore", "--noflush")),
        ("cni-portmap IPv6", ("ip6tables-legacy-restore", "--noflush"))]
    v6 = node1.loads[3].text
    assert "-s fd00:10:244:1::/64 -j CNI-HOSTPORT-SETMARK" in v6
    assert "-j DNAT --to-destination [fd00:10:244:1::10]:80" in v6
    assert "-s 127.0.0.1 " not in v6 and "-s ::1 " not in v6 and "-s ::1/128" not in v6
    assert not any("ipv6" in s.path and "localnet" in s.path for s in node1.sysctls)
    assert "net/ipv4/conf/cni0/route_localnet" in {s.path for s in node1.sysctls}
    nft = _setup(plan_lab(load_example("dual-stack-hostnetwork"), runid=RUN,
                          mode="nftables"), "-n0-node1")
    assert nft.loads[3].argv == ("nft", "-f", "-")
    assert "add table ip6 cni_hostport" in nft.loads[3].text
    assert ("add rule ip6 cni_hostport hostports meta l4proto tcp th dport 8080 dnat to "
            "[fd00:10:244:1::10]:80") in nft.loads[3].text


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_hostport_loads_of_both_families_apply_in_order(scratch_netns: str, mode: str) -> None:
    """Every load of a dual-stack node with hostPorts (kube-proxy's and portmap's, each
    family) applies, in the plan's order, in a scratch namespace (as the lab loads them)."""
    plan = plan_lab(load_example("dual-stack-hostnetwork"), runid=RUN, mode=mode)
    setup = _setup(plan, "-n0-node1")
    loads = setup.loads
    assert len(loads) == 4
    if setup.nfacct:  # the counters kube-proxy's rules name, made as the lab makes them
        res = in_netns(scratch_netns, sys.executable, "-m", "sourceip.lab.nfacct",
                       *setup.nfacct)
        assert res.returncode == 0, res.stderr
    for load in loads:
        if shutil.which(load.argv[0]) is None:
            pytest.skip(f"{load.argv[0]} is not installed")
        res = in_netns(scratch_netns, *load.argv, stdin=load.text)
        assert res.returncode == 0, f"{load.label}: {res.stderr}"


def test_fallback_probes_per_family() -> None:
    """Without predictions the lab probes each family a Service has (``default_probe_specs``:
    IPv6 ids end in ``/ipv6`` and probe IPv6 addresses); a single-stack Service only its
    own family."""
    c = load_example("dual-stack")
    plan = plan_lab(c, runid=RUN)
    specs = {s.id: s for s in default_probe_specs(c, plan)}
    v6 = {i: s for i, s in specs.items() if "/ipv6 " in i}
    assert v6 and all(":" in s.dst_ip for s in v6.values())
    assert all(":" not in s.dst_ip for i, s in specs.items() if i not in v6)
    assert specs["default/server:http/tcp/ipv6 pod/default/client-node2 -> ClusterIP"
                 ].dst_ip == "fd00:10:96::100"
    assert specs["default/server:http/tcp/ipv6 external -> node1:NodePort"].dst_ip == (
        "fd00:10::11")
    assert specs["default/server:http/tcp external -> node1:NodePort"].dst_ip == "10.0.0.11"
    assert not any(i.startswith("default/server-v4:") and "/ipv6" in i for i in specs)
    assert all("/ipv6" in i for i in specs if i.startswith("default/server-v6:"))
    assert "default/server:http/tcp/ipv6 pod/default/server -> ClusterIP (hairpin)" in specs
    # an IPv6-only cluster: only IPv6 probes
    six = generate(5, family="6").cluster
    only6 = default_probe_specs(six, plan_lab(six, runid=RUN))
    assert only6 and all(":" in s.dst_ip and "/ipv6" in s.id for s in only6)


def test_cni_egress_masquerade_per_family(scratch_netns: str) -> None:
    """``egressMasquerade: true`` on a dual-stack cluster: the CNI's egress NAT table in each
    family (``ip`` and ``ip6 sourceip-cni``, IPv6 pools, multicast ff00::/8 excluded), both
    passing ``nft -c``; an IPv6-only cluster gets the IPv6 table alone."""
    c = load_example("dual-stack")
    plan = plan_lab(c.with_(profile=replace(c.profile, egress_masquerade=True)), runid=RUN)
    loads = {x.label: x for x in _setup(plan, "-n0-node1").loads}
    v4, v6 = loads["cni-egress-masquerade"], loads["cni-egress-masquerade IPv6"]
    assert "add rule ip sourceip-cni postrouting ip saddr { 10.244.0.0/16 }" in v4.text
    assert ("add rule ip6 sourceip-cni postrouting ip6 saddr { fd00:10:244::/56 } ip6 daddr "
            "!= ff00::/8 masquerade") in v6.text
    six = generate(5, family="6").cluster
    six = six.with_(profile=replace(six.profile, egress_masquerade=True))
    labels = [x.label for x in _setup(plan_lab(six, runid=RUN), "-n0-node1").loads]
    assert labels == ["kube-proxy IPv6", "cni-egress-masquerade IPv6"]
    if shutil.which("nft") is None:
        pytest.skip("the nft binary is not installed")
    for load in (v4, v6):
        res = in_netns(scratch_netns, "nft", "-c", "-f", "-", stdin=load.text)
        assert res.returncode == 0, f"{load.label}: {res.stderr}"


def _run(*extra: str) -> tuple[int, dict[str, object], str]:
    args = [sys.executable, "-m", "sourceip", "lab", "run", "-o", "json", *extra]
    res = subprocess.run(args, capture_output=True, text=True, env=_env(), timeout=300)
    return res.returncode, json.loads(res.stdout) if res.stdout.strip() else {}, res.stderr


def _check_both_families(code: int, out: dict[str, object], err: str,
                         seen6: set[str]) -> None:
    results = out.get("results")
    assert isinstance(results, list), err
    bad = [r for r in results if not r.get("agree")]
    assert code == 0 and not bad, json.dumps(bad, indent=1)[:4000] + err
    assert len(results) == 40
    dsts = [str(r["spec"]["dst_ip"]) for r in results]  # type: ignore[index]
    assert sum(":" in d for d in dsts) == 21 and sum(":" not in d for d in dsts) == 19
    seen = {str(o.get("seen_source")) for r in results for o in r["observed"]}  # type: ignore[index]
    assert seen6 <= seen


@pytest.mark.lab
@needs_lab
@pytest.mark.parametrize("extra", [(), ("--iptables", "nft"), ("--mode", "nftables")],
                         ids=["iptables-legacy", "iptables-nft", "nftables"])
def test_dual_stack_example_agrees_in_both_families(clean_host: None,
                                                    extra: tuple[str, ...]) -> None:
    # masqueraded to the bridge's IPv6 gateway, to node2's IPv6 address, and kept (ETP Local)
    _check_both_families(*_run("--example", "dual-stack", *extra),
                         seen6={"fd00:10:244:1::1", "fd00:10::12", "2001:db8:ffff::10"})


@pytest.mark.lab
@needs_lab
@pytest.mark.parametrize(("attach", "inter"), [("routed", "direct"), ("bridge", "tunnel"),
                                               ("routed", "tunnel")])
def test_dual_stack_profiles_agree(clean_host: None, tmp_path: Path, attach: str,
                                   inter: str) -> None:
    text = example_text("dual-stack").replace("podAttach: bridge", f"podAttach: {attach}")
    f = tmp_path / "cluster.yaml"
    f.write_text(text.replace("interNode: direct", f"interNode: {inter}"))
    # routed: the node's own IPv6 address; routed + tunnel: the tunnel's (RFC 6724 rule 8)
    own = {("routed", "direct"): "fd00:10::11", ("bridge", "tunnel"): "fd00:10:244:1::1",
           ("routed", "tunnel"): "fd00:10:244:1::"}[(attach, inter)]
    _check_both_families(*_run("-f", str(f)), seen6={own, "2001:db8:ffff::10"})


@pytest.mark.lab
@needs_lab
def test_dual_stack_lab_report_carries_both_families(clean_host: None, tmp_path: Path) -> None:
    """``lab run --report``: every probed path of both families has its observation (probe
    ids of IPv6 paths end in ``/ipv6#N``, explain.probes.path_probe_id)."""
    report = tmp_path / "lab.html"
    res = subprocess.run([sys.executable, "-m", "sourceip", "lab", "run", "--example",
                          "dual-stack", "--report", str(report)], capture_output=True,
                         text=True, env=_env(), timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    html = report.read_text()
    assert "40 of 40 probed paths agree" in html
    assert html.count("/ipv6#") == 21 and html.count("/tcp#") + html.count("/udp#") == 19
    assert "Service default/server (IPv6)" in html


@pytest.mark.lab
@needs_lab
@pytest.mark.parametrize("extra", [(), ("--mode", "nftables")], ids=["iptables", "nftables"])
def test_dual_stack_load_balancers_agree(clean_host: None, extra: tuple[str, ...]) -> None:
    """``--example dual-stack-lb``: every path of both families agrees, through-LB ones
    included (IPv4 and IPv6 ECMP pools, the IPv6 haproxy with PROXY v2), and every health
    check, over each family, observes what kube-proxy's model predicts."""
    code, out, err = _run("--example", "dual-stack-lb", *extra)
    results = out.get("results")
    assert isinstance(results, list), err
    bad = [r for r in results if not r.get("agree")]
    assert code == 0 and not bad, json.dumps(bad, indent=1)[:4000] + err
    via_lb = {str(r["spec"]["dst_ip"]) for r in results if r["spec"].get("via_lb")}
    assert via_lb == {"172.18.255.10", "fd00:18:255::10", "fd00:18:255::40"}
    checks = out["health_checks"]
    assert isinstance(checks, list) and len(checks) == 9
    assert all(h["agree"] for h in checks)
    assert sorted((h["family"], h["node"], h["observed"]) for h in checks
                  if h["service"] == "default/web") == [
        (4, "node1", "200"), (4, "node2", "200"), (4, "node3", "503"),
        (6, "node1", "200"), (6, "node2", "200"), (6, "node3", "503")]
    seen = {str(o.get("seen_source")) for r in results for o in r["observed"]
            if r["spec"].get("via_lb")}
    # forwarding keeps the client in both families; the IPv6 proxy connects from the nodes'
    # side (node addresses or node2's bridge) with the client in its PROXY v2 header
    assert {"192.168.100.2", "2001:db8:ffff::10"} <= seen


@pytest.mark.lab
@needs_lab
@pytest.mark.parametrize("extra", [(), ("--mode", "nftables")], ids=["iptables", "nftables"])
def test_dual_stack_hostports_agree(clean_host: None, extra: tuple[str, ...]) -> None:
    """``--example dual-stack-hostnetwork``: hostNetwork and hostPort paths of both families
    agree (the IPv6 hostPort paths go through the portmap plugin's ip6tables / ip6 rules: an
    IPv6 external client keeps its address, same-node pods and hairpin are masqueraded)."""
    code, out, err = _run("--example", "dual-stack-hostnetwork", *extra)
    results = out.get("results")
    assert isinstance(results, list), err
    bad = [r for r in results if not r.get("agree")]
    assert code == 0 and not bad, json.dumps(bad, indent=1)[:4000] + err
    v6 = [r for r in results if ":" in str(r["spec"]["dst_ip"])]
    assert len(results) == 122 and len(v6) == 58
    seen6 = {str(o.get("seen_source")) for r in v6 for o in r["observed"]}
    assert {"2001:db8:ffff::10", "fd00:10:244:1::1", "fd00:10:244:2::20"} <= seen6


@pytest.mark.lab
@needs_lab
def test_cni_egress_masquerade_agrees_in_both_families(clean_host: None, tmp_path: Path) -> None:
    """``dual-stack-hostnetwork`` with ``egressMasquerade: true`` (the lab's ``ip`` and ``ip6
    sourceip-cni`` tables): a pod of another node reaching a node address is seen as its
    node's address in each family, as the tracer predicts (before it modelled the CNI's NAT,
    20 of these 122 paths disagreed, 10 per family)."""
    text = example_text("dual-stack-hostnetwork").replace(
        "  interNode: direct\n", "  interNode: direct\n  egressMasquerade: true\n")
    f = tmp_path / "cluster.yaml"
    f.write_text(text)
    code, out, err = _run("-f", str(f))
    results = out.get("results")
    assert isinstance(results, list), err
    bad = [r for r in results if not r.get("agree")]
    assert code == 0 and not bad, json.dumps(bad, indent=1)[:4000] + err
    assert len(results) == 122
    seen = {str(o.get("seen_source")) for r in results for o in r["observed"]
            if "pod on node2 -> node1" in str(r["spec"].get("description", ""))}
    assert seen == {"10.0.0.12", "fd00:10::12"}
