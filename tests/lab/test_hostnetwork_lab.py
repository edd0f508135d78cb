"""Direct paths in the lab (issue #16): ``sourceip lab run --example hostnetwork`` builds the
hostNetwork Deployment's pods in their nodes' namespaces and loads the CNI portmap plugin's
hostPort rules beside kube-proxy's (iptables-restore --noflush / its own nft table); every
direct path is probed and must agree, in iptables (both back ends) and nftables modes.

The plan tests need no root: the portmap load follows kube-proxy's, with route_localnet."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sourceip.lab.plan import plan_lab, render_script
from sourceip.sources import load_example

from .helpers import lab_skip_reason
from .test_hygiene import _env

needs_lab = pytest.mark.skipif(lab_skip_reason() is not None, reason=str(lab_skip_reason()))


def test_plan_loads_portmap_after_kube_proxy_on_every_node() -> None:
    plan = plan_lab(load_example("hostnetwork"))
    nodes = [s for s in plan.setups if s.loads]
    assert len(nodes) == 3
    for s in nodes:
        assert [load.label for load in s.loads] == ["kube-proxy", "cni-portmap"]
        pm = s.loads[1]
        assert pm.argv == ("iptables-legacy-restore", "--noflush")
        assert "-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT" in pm.text
        assert any(x.path == "net/ipv4/conf/cni0/route_localnet" and x.value == "1"
                   for x in s.sysctls)
    nft = plan_lab(load_example("hostnetwork"), mode="nftables")
    loads = [s.loads[-1] for s in nft.setups if s.loads]
    assert all(x.argv == ("nft", "-f", "-") and "add table ip cni_hostport" in x.text
               for x in loads)
    assert "iptables-legacy-restore --noflush <<'SIP_EOF'" in render_script(plan)


def test_hostnetwork_pods_serve_in_their_node_namespace() -> None:
    plan = plan_lab(load_example("hostnetwork"))
    by_pod = {srv.pod: srv for srv in plan.servers}
    assert by_pod["default/syslog-7d9f-a"].ns.endswith("-n0-node1")
    assert by_pod["default/syslog-7d9f-a"].tcp_ports == (6514,)
    assert by_pod["default/syslog-7d9f-a"].udp_ports == (5514,)
    assert by_pod["default/edge-node1"].tcp_ports == (80,)  # the container port, DNATed to


def _run(*extra: str) -> tuple[int, dict[str, object], str]:
    args = [sys.executable, "-m", "sourceip", "lab", "run", "--example", "hostnetwork",
            "-o", "json", *extra]
    res = subprocess.run(args, capture_output=True, text=True, env=_env(), timeout=300)
    return res.returncode, json.loads(res.stdout) if res.stdout.strip() else {}, res.stderr


@pytest.mark.lab
@needs_lab
@pytest.mark.parametrize("extra", [(), ("--iptables", "nft"), ("--mode", "nftables")],
                         ids=["iptables-legacy", "iptables-nft", "nftables"])
def test_every_direct_path_agrees_in_the_lab(clean_host: None, extra: tuple[str, ...]) -> None:
    code, out, err = _run(*extra)
    results = out.get("results")
    assert isinstance(results, list), err
    bad = [r for r in results if not r.get("agree")]
    assert code == 0 and not bad, json.dumps(bad, indent=1)[:4000] + err
    assert len(results) == 64
    described = [str(r["spec"]["description"]) for r in results]  # type: ignore[index]
    assert all("(direct, hostNetwork)" in d or "(direct, hostPort)" in d for d in described)
    # 6 hostPort blocks x 7 paths, but node3 has no client pod besides edge-node3 itself
    assert sum("(direct, hostPort)" in d for d in described) == 40
    text = json.dumps(results)
    assert "rejected" in text  # node3 refuses the hostNetwork ports
    assert "127.0.0.1" in text  # node -> localhost:hostPort, masqueraded by the plugin
