"""IPVS in the packet path of a kube-proxy ipvs-mode node.

Where IPVS sits (Linux ``net/netfilter/ipvs/ip_vs_core.c``, ``ip_vs_ops4``): a packet from
elsewhere goes through nat PREROUTING (kube-proxy's ``KUBE-SERVICES`` only *marks* for
masquerade and ACCEPTs — no DNAT), is routed *locally* (ClusterIPs, externalIPs and LB VIPs are
bound to the ``kube-ipvs0`` dummy interface; NodePorts use the node's own addresses), passes
filter INPUT (``KUBE-IPVS-FILTER``, ``KUBE-PROXY-FIREWALL``, ``KUBE-NODE-PORT``), and at
LOCAL_IN (``ip_vs_remote_request4``, priority ``NF_IP_PRI_NAT_SRC - 2``: after filter INPUT,
before nat INPUT) IPVS matches the virtual server (protocol, address, port), picks a real server
and, in masquerading (NAT) mode, rewrites the destination and sends the packet out through
LOCAL_OUT (``ip_vs_nat_xmit`` → ``ip_vs_send_or_cont``: filter OUTPUT runs, nat OUTPUT does not
as the connection's NAT is already set up) and POSTROUTING, where ``KUBE-POSTROUTING``
masquerades marked packets and hairpin packets (``KUBE-LOOP-BACK``). A packet the node itself
sends meets IPVS at LOCAL_OUT (``ip_vs_local_request4``, after nat OUTPUT, before filter
OUTPUT). With ``net.ipv4.vs.conntrack=1`` (kube-proxy sets it) conntrack keeps the DNAT, so the
reply is un-NATed like an iptables DNAT: the tracer records it in its conntrack as it does for
a DNAT rule.

``IPVSEvaluator`` is an ``Evaluator`` whose ``prerouting`` / ``output`` hooks include all of
the above up to (not including) POSTROUTING; the branches IPVS produced carry an ``ipvs`` step
(``ipvs_handled``) and the tracer then runs only POSTROUTING (``ipvs_hooks``).

Which real server (``ip_vs_*`` schedulers): every real server of weight > 0 is a branch.
``rr`` ignores weights (each 1/N); ``wrr`` and the others get shares proportional to their
weights. The choice of ``rr``/``wrr`` depends on the order of earlier connections, ``lc``/
``wlc``/``sed``/``nq`` on connection counts, ``sh``/``dh``/``mh`` on a hash of the source or
destination, ``lblc``/``lblcr`` on locality state: none is known to a trace, so the shares are
what the scheduler gives over many connections (rr/wrr) or an equal-weight stand-in (the others,
said in a note). kube-proxy gives every real server weight 1, so all shares are equal.
Persistence (``-p``, ClientIP affinity) is reported as session affinity.

A virtual server without real servers: ``ip_vs_schedule`` finds no destination and
``ip_vs_leave`` answers ICMP port unreachable — the outcome is *rejected*, with a step that says
so. A kube-ipvs0 address on a port without a virtual server is a local address: kube-proxy's
``KUBE-IPVS-FILTER`` rejects new connections to it; without that rule, a socket of the node
would answer — reported as rejected (connection refused) with a step saying why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from typing import TYPE_CHECKING

from sourceip.net.addr import IPAddress, IPNetwork
from sourceip.net.packet import FiveTuple, Packet
from sourceip.net.prefixset import PrefixSet
from sourceip.netfilter.evaluate import (
    ONE,
    Assumption,
    Branch,
    Evaluator,
    IfaceQuestion,
    Step,
    mul_prob,
    new_packet,
    new_step,
)
from sourceip.netfilter.ipset import IPSet
from sourceip.netfilter.ir import Jump, Ruleset
from sourceip.netfilter.parse_ipvsadm import IPVSTable, RealServer, VirtualServer

if TYPE_CHECKING:
    from sourceip.cluster import Cluster, KubeProxyConfig
    from sourceip.dataplane.topology import Route

__all__ = ["IPVS_TABLE", "IPVSEvaluator", "ipvs_bound", "ipvs_handled", "ipvs_hook_names",
           "ipvs_hooks", "node_evaluator"]

IPVS_TABLE = "ipvs"  # Step.table of the steps IPVS adds
_CT_NEW = frozenset({"NEW"})
_CT_DNAT = frozenset({"NEW", "DNAT"})
# Schedulers whose long-run shares follow the weights without runtime state.
_STATELESS = frozenset({"rr", "wrr"})


def ipvs_handled(b: Branch) -> bool:
    """True when IPVS rewrote this branch's packet (its filter OUTPUT already ran)."""
    if not b.dnat:  # cheap first: most branches of other modes stop here
        return False
    for s in b.steps:
        if s.table == IPVS_TABLE:
            return True
    return False


def ipvs_bound(ev: Evaluator, addr: IPAddress) -> bool:
    """True when ``ev`` is an ipvs-mode node's and ``addr`` one of its kube-ipvs0 addresses
    (a ClusterIP, externalIP or LB VIP bound to the dummy interface). A connection the node
    itself opens to such an address gets the address itself as its source: binding it puts
    ``local VIP dev kube-ipvs0 ... src VIP`` in the local table, and for an ``RTN_LOCAL`` route
    Linux takes the route's preferred source (``ip_route_output_key_hash_rcu`` in
    ``net/ipv4/route.c``: ``fl4->saddr = res->fi->fib_prefsrc`` else ``fl4->daddr``).
    Upstream: kubernetes#63241 ("requests from the host to service IPs are send with the
    service ip as the source ip"), fixed by PR 63319 — the KUBE-CLUSTER-IP ``src,dst``
    masquerade rule without a local-traffic detector (proxier.go ``writeIptablesRules``: "the
    service VIP being picked as the source IP to reach a VIP"); with a detector the VIP source
    is off-cluster (``dst,dst ! -s clusterCIDR``) and masqueraded too."""
    return isinstance(ev, IPVSEvaluator) and addr in ev.bound


def ipvs_hooks(route: Route) -> list[str]:
    """The hooks left for a packet IPVS sent to a real server: POSTROUTING, and INPUT again
    when the real server is the node itself."""
    return ["postrouting", "input"] if route.kind == "local" else ["postrouting"]


def ipvs_hook_names(local_origin: bool, route: Route) -> tuple[str, ...]:
    """The hooks an IPVS-handled packet went through on the node, for the hop's display."""
    first = ("output", "ipvs") if local_origin else ("prerouting", "input", "ipvs", "output")
    return (*first, *ipvs_hooks(route))


class IPVSEvaluator(Evaluator):
    """An ``Evaluator`` for a node running kube-proxy in ipvs mode: ``table`` holds its
    virtual servers, ``bound`` the kube-ipvs0 addresses (local addresses for ``addrtype`` and
    routing). ``local`` is the node's own addresses; ``bound`` is added to them."""

    def __init__(self, ruleset: Ruleset, local: Iterable[IPAddress | IPNetwork | str],
                 table: IPVSTable, bound: Iterable[IPAddress], *,
                 ipsets: Mapping[str, IPSet] | None = None,
                 bridges: Iterable[str] | None = None,
                 ifaces: IfaceQuestion | None = None) -> None:
        self.table = table
        self.bound = frozenset(bound)
        self._plans_by_vs: dict[tuple[int, str], _Plan] = {}
        super().__init__(ruleset, PrefixSet([*local, *self.bound]), ipsets=ipsets,
                         bridges=bridges, ifaces=ifaces)
        self._output_noop = _filter_output_is_noop(ruleset)

    def run_hook(self, hook: str, packet: Packet, *, ct_state: Iterable[str] = _CT_NEW,
                 table_type: str | None = None, assumed: Sequence[Assumption] = ()
                 ) -> list[Branch]:
        if table_type is not None or hook not in ("prerouting", "output"):
            return super().run_hook(hook, packet, ct_state=ct_state, table_type=table_type,
                                    assumed=assumed)
        ct = ct_state if isinstance(ct_state, frozenset) else frozenset(ct_state)
        out: list[Branch] = []
        if hook == "prerouting":
            for b in super().run_hook("prerouting", packet, ct_state=ct, assumed=assumed):
                taken, vs = self._target(b)
                if b.disposition != "accept" or not taken:
                    out.append(b)
                    continue
                # Routed locally (a kube-ipvs0 or node address): filter INPUT, then IPVS.
                for b2 in super().run_hook("input", b.packet, ct_state=ct, table_type="filter",
                                           assumed=b.assumptions):
                    both = _join(b, b2)
                    if b2.disposition != "accept":
                        out.append(both)
                    else:
                        out += self._ipvs(both, vs, "LOCAL_IN")
            return out
        for b in super().run_hook("output", packet, ct_state=ct, table_type="nat",
                                  assumed=assumed):
            taken, vs = self._target(b)
            if b.disposition != "accept":
                out.append(b)
            elif not taken:  # not for IPVS: the rest of OUTPUT as usual
                for b2 in super().run_hook("output", b.packet, ct_state=ct,
                                           table_type="filter", assumed=b.assumptions):
                    out.append(_join(b, b2))
            else:
                out += self._ipvs(b, vs, "LOCAL_OUT")
        return out

    def _plan_vs(self, vs: VirtualServer, where: str) -> _Plan:
        """What does not depend on the packet: the live real servers and their shares, the
        step naming the virtual server, notes, persistence (computed once per server)."""
        live = tuple(rs for rs in vs.real_servers if rs.weight > 0)
        total = len(live) if vs.scheduler == "rr" else sum(rs.weight for rs in live)
        same: dict[Fraction, Fraction] = {}  # equal shares as one object (cheap to compare)
        shares = tuple(same.setdefault(f, f) for f in (
            Fraction(1 if vs.scheduler == "rr" else rs.weight, total) for rs in live))
        notes: list[str] = []
        if vs.scheduler not in _STATELESS:
            notes.append(f"IPVS scheduler {vs.scheduler}: the real server depends on runtime "
                         "state (connection counts or a hash); shares shown by weight")
        if any(rs.forward != "m" for rs in live):
            notes.append(f"virtual server {vs.describe()}: real servers not in masquerading "
                         "mode keep the VIP as destination (direct routing / tunnel): "
                         "traced as DNAT")
        affinity = (f"IPVS persistence {vs.persistent}s",) if vs.persistent else ()
        head = Step(IPVS_TABLE, where, -1, None, f"virtual server {vs.describe()}")
        return live, shares, head, tuple(notes), affinity

    def _target(self, b: Branch) -> tuple[bool, VirtualServer | None]:
        """(whether IPVS takes the branch's packet, its virtual server — None for a
        kube-ipvs0 address without one)."""
        t = b.packet.tuple
        vs = self.table.lookup(t.proto, t.dst, t.dport)
        if vs is not None:
            return True, vs
        return t.dst in self.bound, None

    def _ipvs(self, b: Branch, vs: VirtualServer | None, where: str) -> list[Branch]:
        """IPVS on branch ``b``: a branch per real server (DNAT, then filter OUTPUT)."""
        t = b.packet.tuple
        if vs is None:
            step = Step(IPVS_TABLE, where, -1, None,
                        f"reject: no IPVS virtual server for {t.proto} {t.dst}:{t.dport} on "
                        "kube-ipvs0 (a local address: connection refused, or a node socket "
                        "listening on that port)")
            return [_with(b, steps=(*b.steps, step), disposition="reject")]
        # by identity: the table holds its virtual servers, so their ids are not reused
        plan = self._plans_by_vs.get((id(vs), where))
        if plan is None:
            plan = self._plans_by_vs[(id(vs), where)] = self._plan_vs(vs, where)
        live, shares, head, notes, affinity = plan
        if not live:
            why = "has no real servers" if not vs.real_servers else \
                "has only real servers of weight 0"
            step = Step(IPVS_TABLE, where, -1, None,
                        f"reject: virtual server {vs.describe()} {why} (ip_vs_leave: ICMP port "
                        "unreachable)")
            return [_with(b, steps=(*b.steps, step), disposition="reject")]
        out: list[Branch] = []
        for i, rs in enumerate(live):
            share = shares[i]
            nt = _retarget(t, rs.addr, rs.port)
            pkt = new_packet(nt, b.packet.iif, None, b.packet.mark)
            dnat = new_step(IPVS_TABLE, where, i, None, "DNAT", "iptables", "ip",
                            (t, rs.addr, rs.port))
            picked = _branch(mul_prob(b.probability, share), pkt, b.disposition,
                             (*b.steps, head, dnat), b.masquerade, b.snat_to, True,
                             b.affinity + affinity if affinity else b.affinity,
                             b.unknown + notes if notes else b.unknown, b.assumptions)
            if self._output_noop:  # filter OUTPUT only jumps to empty chains: nothing to do
                out.append(picked)
                continue
            for b2 in super().run_hook("output", pkt, ct_state=_CT_DNAT, table_type="filter",
                                       assumed=picked.assumptions):
                out.append(_join(picked, b2))
        return out


# Branches and tuples are built on every trace: set their slots directly (what the frozen
# dataclasses' __init__ does, minus the frozen-__setattr__ detour; neither has __post_init__
# work to skip that matters here: FiveTuple's checks hold, the address family and the port
# range are those of a parsed real server of the same virtual server).
_BRANCH_FIELDS = ("probability", "packet", "disposition", "steps", "masquerade", "snat_to",
                  "dnat", "affinity", "unknown", "assumptions")
_B_SET = tuple((f, getattr(Branch, f).__set__, getattr(Branch, f).__get__)
               for f in _BRANCH_FIELDS)
_T_SET = tuple(getattr(FiveTuple, f).__set__ for f in ("proto", "src", "sport", "dst",
                                                       "dport"))


def _filter_output_is_noop(ruleset: Ruleset) -> bool:
    """True when the filter table's OUTPUT chain (policy ACCEPT) holds only unconditional-or-
    not jumps to chains without rules (kube-proxy's ``KUBE-IPVS-OUT-FILTER`` when no
    LoadBalancer has source ranges excluding the node): walking it changes nothing."""
    if ruleset.backend != "iptables":
        return False
    t = ruleset.table("filter")
    if t is None:
        return True
    out = t.chain("OUTPUT")
    if out is None:
        return True
    if (out.policy or "ACCEPT").upper() != "ACCEPT":
        return False
    for r in out.rules:
        v = r.verdict
        if not isinstance(v, Jump) or len(r.actions) != 1:
            return False
        target = t.chain(v.chain)
        if target is None or target.rules:
            return False
    return True


_Plan = tuple[tuple[RealServer, ...], tuple[Fraction, ...], Step, tuple[str, ...],
              tuple[str, ...]]


def _with(b: Branch, **changes: object) -> Branch:
    nb = object.__new__(Branch)
    for name, put, get in _B_SET:
        put(nb, changes[name] if name in changes else get(b, Branch))
    return nb


def _retarget(t: FiveTuple, addr: IPAddress, port: int) -> FiveTuple:
    nt = object.__new__(FiveTuple)
    for put, v in zip(_T_SET, (t.proto, t.src, t.sport, addr, port), strict=True):
        put(nt, v)
    return nt


def _branch(probability: Fraction, packet: Packet, disposition: str, steps: tuple[Step, ...],
            masquerade: bool, snat_to: IPAddress | None, dnat: bool, affinity: tuple[str, ...],
            unknown: tuple[str, ...], assumptions: tuple[Assumption, ...]) -> Branch:
    """``Branch(...)`` with every field given, built without the frozen-dataclass detour."""
    nb = _NEW(Branch)
    _B_PROB(nb, probability)
    _B_PACKET(nb, packet)
    _B_DISP(nb, disposition)
    _B_STEPS(nb, steps)
    _B_MASQ(nb, masquerade)
    _B_SNAT(nb, snat_to)
    _B_DNAT(nb, dnat)
    _B_AFF(nb, affinity)
    _B_UNK(nb, unknown)
    _B_ASSUMED(nb, assumptions)
    return nb


_NEW = object.__new__
(_B_PROB, _B_PACKET, _B_DISP, _B_STEPS, _B_MASQ, _B_SNAT, _B_DNAT, _B_AFF, _B_UNK,
 _B_ASSUMED) = (put for _name, put, _get in _B_SET)


def _join(a: Branch, b: Branch) -> Branch:
    """``a`` followed by ``b`` (``b`` ran on ``a``'s packet, under ``a``'s assumptions)."""
    p = b.probability if a.probability is ONE or a.probability == ONE else \
        mul_prob(a.probability, b.probability)
    return _branch(p, b.packet, b.disposition, a.steps + b.steps,
                   a.masquerade or b.masquerade, b.snat_to or a.snat_to, a.dnat or b.dnat,
                   a.affinity + b.affinity if a.affinity else b.affinity,
                   a.unknown + b.unknown if a.unknown else b.unknown,
                   b.assumptions or a.assumptions)


def node_evaluator(rules_cluster: Cluster, cluster: Cluster, node: str, config: KubeProxyConfig,
                   local: Iterable[IPAddress | IPNetwork], *, table: IPVSTable | None = None,
                   ruleset: Ruleset | None = None,
                   ipsets: Mapping[str, IPSet] | None = None,
                   bridges: Iterable[str] | None = None,
                   ifaces: IfaceQuestion | None = None) -> IPVSEvaluator:
    """The evaluator of an ipvs-mode node. Without ``table``: what kube-proxy installs for
    ``rules_cluster`` (virtual servers, kube-ipvs0 addresses, ipsets, iptables rules) plus the
    CNI portmap rules. With ``table`` (a node's ``ipvsadm`` dump): ``ruleset`` (its
    iptables-save; none: no iptables rules at all) and ``ipsets`` (its ``ipset save``; none:
    every ``-m set`` rule is undecided); the virtual servers' addresses that are not the node's
    own stand for kube-ipvs0's. ``bridges``, ``ifaces``: as ``Evaluator``'s."""
    if table is None:
        from sourceip.dataplane.portmap import build_portmap_ruleset, merge_portmap
        from sourceip.kubeproxy.ipvs import build_ipvs_node

        built = build_ipvs_node(rules_cluster, cluster.node(node), config)
        rs = merge_portmap(built.ruleset, build_portmap_ruleset(cluster, node, config.mode))
        return IPVSEvaluator(rs, local, built.table, built.dummy_addresses,
                             ipsets=built.ipsets(), bridges=bridges)
    own = frozenset(cluster.node(node).addresses)
    return IPVSEvaluator(ruleset if ruleset is not None else Ruleset(backend="iptables"),
                         local, table, table.addresses - own, ipsets=ipsets, bridges=bridges,
                         ifaces=ifaces)
