"""hostPort as the CNI ``portmap`` plugin installs it, as netfilter IR beside kube-proxy's rules.

Modelled on containernetworking/plugins ``plugins/meta/portmap`` at release **v1.9.1**
(``portmap_iptables.go``, ``portmap_nftables.go``, ``chain.go``, ``utils.go``, ``main.go``;
``pkg/utils/utils.go`` for chain names). Kubelet hands the pod's ``hostPort`` entries to the
runtime, which calls the plugin once per pod sandbox (CNI ADD) with ``runtimeConfig.portMappings``
``{hostPort, containerPort, protocol, hostIP}`` and the pod's address from the previous plugin
(the bridge plugin: ``podIP/<node pod CIDR prefix>``; a routed CNI such as calico: ``podIP/32``).

iptables back end (the plugin's default whenever iptables works), all in table ``nat``::

    PREROUTING, OUTPUT (appended):  -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
    CNI-HOSTPORT-DNAT:  -m comment --comment 'dnat name: "NET" id: "ID"'
                        -m multiport -p tcp --destination-ports 8080,... -j CNI-DN-<hash>
    CNI-DN-<hash>, per mapping (-p tcp --dport H [-d hostIP] first in each):
        -s podIP/prefix -j CNI-HOSTPORT-SETMARK
        -s 127.0.0.1 -j CNI-HOSTPORT-SETMARK
        -j DNAT --to-destination podIP:C
    CNI-HOSTPORT-SETMARK:  -m comment --comment "CNI portfwd masquerade mark"
                           -j MARK --set-xmark 0x2000/0x2000
    POSTROUTING (prepended):  -m comment --comment "CNI portfwd requiring masquerade"
                              -j CNI-HOSTPORT-MASQ
    CNI-HOSTPORT-MASQ:  -m mark --mark 0x2000/0x2000 -j MASQUERADE

So the pod sees the real client for any client outside its own subnet; a client in the pod's
subnet (``-s podIP/prefix``: on a bridge, every pod of the node, hairpin included) and
``127.0.0.1`` are masqueraded (the node's address on the interface towards the pod: the bridge).

nftables back end (``"backend": "nftables"``), its own table ``ip cni_hostport``: chains
``prerouting`` / ``output`` (nat, priority -100: ``fib daddr type local jump hostports_all``),
``hostports_all`` (jumps to ``hostip_hostports``, kept empty, and ``hostports``), ``hostports``
(``[ip daddr hostIP] tcp dport H dnat to podIP:C comment "ID"``) and ``masquerading`` (nat
postrouting 100: ``ip saddr podIP ip daddr podIP masquerade`` and the same from
``127.0.0.1``). Only the pod itself (hairpin) and localhost are masqueraded here: another pod
of the same node keeps its address — the back ends differ.

sourceip uses the back end of kube-proxy's mode (iptables mode → iptables, nftables mode →
nftables) so that one node's rules are one ruleset; the plugin's defaults are kept: ``snat``
true, ``markMasqBit`` 13, no ``conditionsV4``, ``masqAll`` false, network name ``cbr0``
(flannel's and the bridge examples' conflist name). The sandbox (container) ID is not in the
Kubernetes API: a stand-in, the SHA-256 of the pod's ``ns/name``, names the chains.

IPv6 (``family=6``): the plugin is called once per pod address, and for an IPv6 one writes
the same rules with ``ip6tables`` (``iptables.NewWithProtocol(ProtocolIPv6)``) or in table
``ip6 cni_hostport`` (knftables ``IPv6Family``): hairpin mark / masquerade from the pod's
IPv6 address (``-s podIP/prefix``), no localhost rule (``if !isV6`` in ``fillDnatRules`` and
``forwardPorts``: ``::1`` cannot be routed out of ``lo``), DNAT to ``[podIP]:port``, and
hostIPs of the other family skipped.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, replace

from sourceip.cluster import Cluster, Node, Pod
from sourceip.netfilter.ir import (
    Addr,
    AddrLike,
    AddrType,
    Chain,
    Dnat,
    Jump,
    Mark,
    MarkSet,
    Masquerade,
    Match,
    Port,
    Proto,
    Rule,
    Ruleset,
    Table,
)

PORTMAP_RELEASE = "v1.9.1"
PORTMAP_SOURCE = ("containernetworking/plugins plugins/meta/portmap "
                  f"({PORTMAP_RELEASE}: portmap_iptables.go, portmap_nftables.go, chain.go)")
NETWORK_NAME = "cbr0"
DEFAULT_MARK_BIT = 13  # main.go DefaultMarkBit

# portmap_iptables.go
TOP_LEVEL_DNAT_CHAIN = "CNI-HOSTPORT-DNAT"
SETMARK_CHAIN = "CNI-HOSTPORT-SETMARK"
MARK_MASQ_CHAIN = "CNI-HOSTPORT-MASQ"
SETMARK_COMMENT = "CNI portfwd masquerade mark"
MASQ_ENTRY_COMMENT = "CNI portfwd requiring masquerade"

# portmap_nftables.go
NFT_TABLE = "cni_hostport"
NFT_TABLE_COMMENT = "CNI portmap plugin"
HOSTPORTS_ALL_CHAIN = "hostports_all"
HOSTIP_HOSTPORTS_CHAIN = "hostip_hostports"
HOSTPORTS_CHAIN = "hostports"
MASQUERADING_CHAIN = "masquerading"

_MAX_CHAIN_LENGTH = 28  # pkg/utils/utils.go maxChainLength
_LOCALHOST = ipaddress.IPv4Address("127.0.0.1")
_MULTIPORT_MAX = 15  # utils.go splitPortList: multiport takes up to 15 ports


@dataclass(frozen=True, slots=True, kw_only=True)
class PortMapping:
    """One ``runtimeConfig.portMappings`` entry (main.go ``PortMapEntry``)."""

    host_port: int
    container_port: int
    protocol: str = "tcp"
    host_ip: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class PortMapConf:
    """The plugin's configuration (main.go ``PortMapConf``), defaults as ``parseConfig`` sets
    them. ``conditions`` are extra matches of the entry rules (``conditionsV4``)."""

    name: str = NETWORK_NAME
    snat: bool = True
    masq_all: bool = False
    mark_masq_bit: int = DEFAULT_MARK_BIT
    external_set_mark_chain: str | None = None
    conditions: tuple[Match, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.mark_masq_bit <= 31:
            raise ValueError("MasqMarkBit must be between 0 and 31")


@dataclass(frozen=True, slots=True, kw_only=True)
class Sandbox:
    """One CNI ADD: the container ID, the pod address with its prefix, its port mappings."""

    container_id: str
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    prefix: int
    mappings: tuple[PortMapping, ...]
    pod: str = ""  # ns/name, for readers


def format_chain_name(name: str, container_id: str, prefix: str) -> str:
    """pkg/utils ``MustFormatChainNameWithPrefix``: ``CNI-<prefix>`` + SHA-512 hex of
    name+id, cut to 28 characters."""
    head = "CNI-" + prefix
    digest = hashlib.sha512((name + container_id).encode()).hexdigest()
    return (head + digest)[:_MAX_CHAIN_LENGTH]


def dnat_chain_name(name: str, container_id: str) -> str:
    """The per-sandbox chain ``CNI-DN-<hash>`` (``genDnatChain``)."""
    return format_chain_name(name, container_id, "DN-")


def sandbox_id(pod: Pod) -> str:
    """The stand-in sandbox ID of ``pod`` (the API does not carry the runtime's)."""
    return hashlib.sha256(pod.key.encode()).hexdigest()


def _trim_comment(text: str) -> str:
    return text if len(text) <= 255 else text[:253] + "..."


def _mark(bit: int) -> int:
    return 1 << bit


def _addr(text: str) -> AddrLike:
    net = ipaddress.ip_network(text, strict=False)
    return net.network_address if net.prefixlen == net.max_prefixlen else net


def _host_ip(m: PortMapping, v6: bool) -> tuple[bool, str]:
    """(skip this entry, destination to match or "") as fillDnatRules decides."""
    if not m.host_ip:
        return False, ""
    hip = ipaddress.ip_address(m.host_ip)
    if (hip.version == 6) != v6:
        return True, ""
    return False, "" if hip.is_unspecified else m.host_ip


# ----------------------------------------------------------------------------- iptables


def toplevel_dnat_entry() -> Rule:
    """``genToplevelDnatChain``'s entry rule (in PREROUTING and OUTPUT)."""
    return Rule(matches=(AddrType("dst", "LOCAL"),), actions=(Jump(TOP_LEVEL_DNAT_CHAIN),))


def setmark_chain(bit: int = DEFAULT_MARK_BIT) -> Chain:
    """``genSetMarkChain``."""
    # --set-xmark M/M is "mark |= M": the IR's MarkSet("or") (kube-proxy's --or-mark, which
    # iptables-save prints as --set-xmark M/M)
    return Chain(name=SETMARK_CHAIN, rules=(
        Rule(actions=(MarkSet("or", _mark(bit)),), comment=SETMARK_COMMENT),))


def masq_chain(bit: int = DEFAULT_MARK_BIT) -> Chain:
    """``genMarkMasqChain``."""
    m = _mark(bit)
    return Chain(name=MARK_MASQ_CHAIN, rules=(
        Rule(matches=(Mark(m, m),), actions=(Masquerade(),)),))


def masq_entry() -> Rule:
    """``genMarkMasqChain``'s entry rule (prepended to POSTROUTING)."""
    return Rule(actions=(Jump(MARK_MASQ_CHAIN),), comment=MASQ_ENTRY_COMMENT)


def dnat_entry_rules(conf: PortMapConf, sb: Sandbox) -> list[Rule]:
    """The sandbox's rules in CNI-HOSTPORT-DNAT (``fillDnatRules``, entryRules): one per
    protocol (sorted) and 15 ports."""
    chain = dnat_chain_name(conf.name, sb.container_id)
    comment = _trim_comment(f'dnat name: "{conf.name}" id: "{sb.container_id}"')
    by_proto: dict[str, list[int]] = {}
    for m in sb.mappings:
        by_proto.setdefault(m.protocol, []).append(m.host_port)
    out: list[Rule] = []
    for proto in sorted(by_proto):
        ports = by_proto[proto]
        for i in range(0, len(ports), _MULTIPORT_MAX):
            chunk = tuple(ports[i:i + _MULTIPORT_MAX])
            out.append(Rule(matches=(Proto(proto), Port("dport", chunk), *conf.conditions),
                            actions=(Jump(chain),), comment=comment))
    return out


def dnat_rules(conf: PortMapConf, sb: Sandbox) -> list[Rule]:
    """The rules of the sandbox's CNI-DN chain (``fillDnatRules``, rules): per mapping the
    hairpin and localhost mark rules (with snat), then the DNAT."""
    v6 = sb.ip.version == 6
    setmark = conf.external_set_mark_chain or SETMARK_CHAIN
    out: list[Rule] = []
    for m in sb.mappings:
        skip, dst = _host_ip(m, v6)
        if skip:
            continue
        base: list[Match] = [Proto(m.protocol), Port("dport", (m.host_port,))]
        if dst:
            base.append(Addr("dst", (_addr(dst),)))
        if conf.snat:
            if conf.masq_all:
                cidr = "::/0" if v6 else "0.0.0.0/0"
            else:
                cidr = f"{sb.ip}/{sb.prefix}"
            out.append(Rule(matches=(*base, Addr("src", (_addr(cidr),))),
                            actions=(Jump(setmark),)))
            if not v6 and not conf.masq_all:
                out.append(Rule(matches=(*base, Addr("src", (_LOCALHOST,))),
                                actions=(Jump(setmark),)))
        out.append(Rule(matches=tuple(base), actions=(Dnat(sb.ip, m.container_port),)))
    return out


def iptables_nat_chains(conf: PortMapConf, sandboxes: Iterable[Sandbox]) -> list[Chain]:
    """The plugin's own chains in table nat after ADD of every sandbox, in creation order
    (SETMARK and MASQ first, then CNI-HOSTPORT-DNAT, then each CNI-DN chain)."""
    chains: list[Chain] = []
    if conf.snat and conf.external_set_mark_chain is None:
        chains += [setmark_chain(conf.mark_masq_bit), masq_chain(conf.mark_masq_bit)]
    entries: list[Rule] = []
    per_sandbox: list[Chain] = []
    for sb in sandboxes:
        entries += dnat_entry_rules(conf, sb)
        per_sandbox.append(Chain(name=dnat_chain_name(conf.name, sb.container_id),
                                 rules=tuple(dnat_rules(conf, sb))))
    chains.append(Chain(name=TOP_LEVEL_DNAT_CHAIN, rules=tuple(entries)))
    return chains + per_sandbox


def build_iptables(conf: PortMapConf, sandboxes: Iterable[Sandbox], *,
                   family: str = "ip") -> Ruleset:
    """The plugin's table nat (``family`` ``ip6``: ip6tables') as a ruleset of its own: its
    chains, and the built-in chains holding only its entry rules (PREROUTING/OUTPUT
    appended, POSTROUTING prepended)."""
    chains = iptables_nat_chains(conf, sandboxes)
    entry = toplevel_dnat_entry()
    builtins = [Chain(name="PREROUTING", hook="prerouting", policy="ACCEPT", rules=(entry,)),
                Chain(name="INPUT", hook="input", policy="ACCEPT"),
                Chain(name="OUTPUT", hook="output", policy="ACCEPT", rules=(entry,)),
                Chain(name="POSTROUTING", hook="postrouting", policy="ACCEPT",
                      rules=(masq_entry(),) if conf.snat and conf.external_set_mark_chain
                      is None else ())]
    return Ruleset(backend="iptables",
                   tables=(Table(name="nat", family=family, chains=(*builtins, *chains)),))


# ----------------------------------------------------------------------------- nftables


def nft_hostports_rules(sb: Sandbox) -> list[Rule]:
    """The sandbox's rules in ``hostports`` (``forwardPorts``)."""
    v6 = sb.ip.version == 6
    out: list[Rule] = []
    for m in sb.mappings:
        skip, dst = _host_ip(m, v6)
        if skip:
            continue
        head: tuple[Match, ...] = (Addr("dst", (_addr(dst),)),) if dst else ()
        out.append(Rule(matches=(*head, Proto(m.protocol), Port("dport", (m.host_port,))),
                        actions=(Dnat(sb.ip, m.container_port),), comment=sb.container_id))
    return out


def nft_masquerading_rules(conf: PortMapConf, sb: Sandbox) -> list[Rule]:
    """The sandbox's rules in ``masquerading``: hairpin (its own address) and localhost."""
    v6 = sb.ip.version == 6
    me = Addr("dst", (sb.ip,))
    out = [Rule(matches=(Addr("src", (sb.ip,)), me), actions=(Masquerade(),),
                comment=sb.container_id)]
    if not v6:
        out.append(Rule(matches=(Addr("src", (_LOCALHOST,)), me), actions=(Masquerade(),),
                        comment=sb.container_id))
    return out


def build_nftables(conf: PortMapConf, sandboxes: Iterable[Sandbox], *,
                   family: str = "ip") -> Ruleset:
    """Table ``cni_hostport`` after ADD of every sandbox, chains in name order (as
    knftables lists them)."""
    sbs = list(sandboxes)
    local = Rule(matches=(*conf.conditions, AddrType("dst", "LOCAL")),
                 actions=(Jump(HOSTPORTS_ALL_CHAIN),))
    hostports: list[Rule] = []
    masq: list[Rule] = []
    for sb in sbs:
        hostports += nft_hostports_rules(sb)
        if conf.snat:
            masq += nft_masquerading_rules(conf, sb)
    chains = [
        Chain(name=HOSTIP_HOSTPORTS_CHAIN),
        Chain(name=HOSTPORTS_CHAIN, rules=tuple(hostports)),
        Chain(name=HOSTPORTS_ALL_CHAIN, rules=(
            Rule(actions=(Jump(HOSTIP_HOSTPORTS_CHAIN),)),
            Rule(actions=(Jump(HOSTPORTS_CHAIN),)))),
    ]
    if conf.snat:
        chains.append(Chain(name=MASQUERADING_CHAIN, hook="postrouting", type="nat",
                            priority=100, rules=tuple(masq)))
    chains += [
        Chain(name="output", hook="output", type="nat", priority=-100, rules=(local,)),
        Chain(name="prerouting", hook="prerouting", type="nat", priority=-100, rules=(local,)),
    ]
    return Ruleset(backend="nftables", tables=(
        Table(name=NFT_TABLE, family=family, chains=tuple(chains), comment=NFT_TABLE_COMMENT),))


# ----------------------------------------------------------------------------- a cluster's node


def sandboxes(cluster: Cluster, node: Node | str, version: int = 4) -> list[Sandbox]:
    """Every pod of ``node`` with a hostPort, as the runtime hands it to the plugin for its
    address of IP ``version`` (pods on the node's pod network with such an address;
    hostNetwork pods get no CNI call). The prefix is the node's podCIDR's of that family on
    a bridge, a host route (/32, /128) on a routed CNI."""
    name = node if isinstance(node, str) else node.name
    the_node = cluster.node(name)
    cidr = the_node.pod_cidr(version)
    routed = cluster.profile.pod_attach == "routed"
    out: list[Sandbox] = []
    for pod in sorted(cluster.pods_by_node.get(name, ()), key=lambda p: p.key):
        if pod.host_network or pod.terminating or pod.phase not in ("Running", "Pending"):
            continue
        ip = next((a for a in pod.ips if a.version == version), None)
        maps = tuple(PortMapping(host_port=cp.host_port, container_port=cp.container_port,
                                 protocol=cp.protocol,
                                 host_ip=str(cp.host_ip) if cp.host_ip is not None else "")
                     for cp in pod.ports if cp.host_port)
        if ip is None or not maps:
            continue
        prefix = (ip.max_prefixlen if routed or cidr is None or ip not in cidr
                  else cidr.prefixlen)
        out.append(Sandbox(container_id=sandbox_id(pod), ip=ip, prefix=prefix, mappings=maps,
                           pod=pod.key))
    return out


def build_portmap_ruleset(cluster: Cluster, node: Node | str, mode: str,
                          conf: PortMapConf | None = None, *, family: int = 4
                          ) -> Ruleset | None:
    """The portmap plugin's rules of IP ``family`` on ``node`` (back end of kube-proxy's
    ``mode``: ``ip6tables`` nat / table ``ip6 cni_hostport`` for 6), or None when no pod
    there has a hostPort and an address of that family."""
    sbs = sandboxes(cluster, node, family)
    if not sbs:
        return None
    c = conf if conf is not None else PortMapConf()
    fam = "ip6" if family == 6 else "ip"
    return (build_nftables(c, sbs, family=fam) if mode == "nftables"
            else build_iptables(c, sbs, family=fam))


def merge_portmap(kube: Ruleset, portmap: Ruleset | None) -> Ruleset:
    """What the node holds once both are installed: for nftables a table beside
    kube-proxy's; for iptables the plugin's chains in kube-proxy's table nat, its entry
    rules appended to PREROUTING / OUTPUT (after kube-proxy's KUBE-SERVICES jump) and
    prepended to POSTROUTING."""
    if portmap is None:
        return kube
    if kube.backend != portmap.backend:
        raise ValueError(f"portmap rules ({portmap.backend}) cannot join a {kube.backend} "
                         "ruleset")
    if portmap.backend == "nftables":
        return replace(kube, tables=kube.tables + portmap.tables)
    pm = portmap.tables[0]
    nat = kube.table("nat", pm.family)
    if nat is None:
        return replace(kube, tables=kube.tables + (pm,))
    pm_builtin = {c.name: c for c in pm.chains if c.hook is not None}
    chains: list[Chain] = []
    for c in nat.chains:
        extra = pm_builtin.pop(c.name, None)
        if extra is not None and extra.rules:
            rules = (extra.rules + c.rules if c.name == "POSTROUTING"
                     else c.rules + extra.rules)
            c = replace(c, rules=rules)
        chains.append(c)
    chains += [c for c in pm.chains if c.hook is None or c.name in pm_builtin]
    new_nat = replace(nat, chains=tuple(chains))
    return replace(kube, tables=tuple(new_nat if t is nat else t for t in kube.tables))


def render_portmap_load(portmap: Ruleset) -> str:
    """The plugin's rules as one load beside kube-proxy's already loaded: an ``nft -f``
    script, or ``iptables-restore --noflush`` input that declares its chains, fills them,
    appends its PREROUTING / OUTPUT entries and inserts its POSTROUTING entry first."""
    if portmap.backend == "nftables":
        from sourceip.netfilter.render_nft import render_nft

        return render_nft(portmap)
    from sourceip.netfilter.render_iptables import render_iptables_rule

    lines: list[str] = []
    for table in portmap.tables:
        lines.append(f"*{table.name}")
        lines += [f":{c.name} - [0:0]" for c in table.chains if c.hook is None]
        for c in table.chains:
            if c.hook is None:
                lines += [render_iptables_rule(c.name, r) for r in c.rules]
        for c in table.chains:
            if c.hook is None:
                continue
            for r in c.rules:
                line = render_iptables_rule(c.name, r)
                if c.name == "POSTROUTING":
                    line = f"-I POSTROUTING 1{line[len('-A POSTROUTING'):]}"
                lines.append(line)
        lines.append("COMMIT")
    return "\n".join(lines) + "\n"


__all__ = [
    "PORTMAP_RELEASE", "PORTMAP_SOURCE", "PortMapConf", "PortMapping", "Sandbox",
    "build_iptables", "build_nftables", "build_portmap_ruleset", "dnat_chain_name",
    "dnat_entry_rules", "dnat_rules", "merge_portmap", "render_portmap_load", "sandboxes",
]
