"""What kube-proxy's rules look like in each release: one table, read by the builders.

Each ``Release`` row is a set of feature flags. ``iptables.py`` and ``nftables.py`` read the
flags of ``release(cfg.version)``; no builder compares version numbers. A new release is a new
row (copy the previous one, flip what its upstream diff changed, cite it).

Where each row comes from (the commits are the stored copies of pkg/proxy/nftables/
proxier_test.go read through the project's search index -- kubernetes/kubernetes and forks of
it; tags were not stored, so a copy is matched to a release by the pull requests whose changes
it holds and by imports that changed between cycles, named per golden file header):

* TestOverallNFTablesRules text per release (tests/kubeproxy/golden, checked in
  test_releases.py):

  - 1.29: **none found.** The stored copies older than 1.30's text are branches of 1.30-cycle
    pull requests, not a release: aroradaman/kubernetes 8ed17af4 (service CIDRs from
    ``OnServiceCIDRsChanged``) already has 1.30's -110 chains and
    ``firewall-ips`` map, so says nothing of 1.29; the two tnqn/kubernetes copies still have
    the priority -101 filter chains and the ``forward`` chain with ``ct state invalid drop``
    jumped from ``filter-forward`` (modelled, see ``dnat-1``) but handle
    LoadBalancerSourceRanges in two different ways (TestOverallNFTablesRules, svc5):

    - d846dce52412b37356bfd22c0698aa5b6dbad68a: ``add set ip kube-proxy firewall { type
      ipv4_addr . inet_proto . inet_service ; ... }``, ``filter-forward``/``-input``/
      ``-output`` each ``ct state new jump firewall-check``, ``firewall-check ip daddr . meta
      l4proto . th dport @firewall drop comment "LoadBalancer traffic not accepted by
      LoadBalancerSourceRanges"``, ``service-ips { 5.6.7.8 . tcp . 80 : goto
      firewall-HVFWP5L3-ns5/svc5/tcp/p80 }`` whose chain holds only ``ip saddr {
      203.0.113.0/25 } goto external-HVFWP5L3-ns5/svc5/tcp/p80 comment "LoadBalancer traffic
      allowed by LoadBalancerSourceRanges"``, and ``add element ip kube-proxy firewall {
      5.6.7.8 . tcp . 80 comment "ns5/svc5:p80" }``: an allowed client is DNATed in nat,
      a refused one keeps the LB address and is dropped by the post-DNAT firewall-check.
    - e2526fc067a0039b8d78c4f2841faac9bc6ec960: no ``firewall`` set and no ``firewall-check``
      at all; the same per-service chain reached from ``service-ips`` ends with ``drop
      comment "LoadBalancer traffic not accepted by LoadBalancerSourceRanges"`` (a drop in
      the nat path).

    Both designs make LoadBalancerSourceRanges work with filter chains after DNAT, so each
    looks like a fix under review, not the released alpha (which #122614's account says was
    broken: firewall-check ran after DNAT), and they disagree with each other. The 1.29
    firewall shape therefore cannot be established from the stored copies: the row keeps
    1.30's ``firewall-ips`` handling behind 1.29's layout (refused LB traffic is not dropped,
    as tests/kubeproxy/test_releases.py's NOT_IN_RELEASE records), and the ``dnat-1`` row
    stays inferred.
  - 1.30: openshift/kubernetes 84a2e12f4ce83374e4ec7214855ca801c86f3957
    (``nftables_1.30_overall.txt``): #122614 + #122692 in, one ``endpoints-check``, nodeports by
    ``fib daddr type local`` when nodePortAddresses is unset.
  - 1.31: danwinship/kubernetes ef85e1223bdc6b1c637397935c76afde2d5d4db5
    (``nftables_1.31_overall.txt``; master in the 1.31 cycle: after #123105, before #122812,
    both in CHANGELOG-1.31): split ``service-``/``nodeport-endpoints-check``, unset
    nodePortAddresses = the node IP (``nodeport-ips``).
  - 1.32: **no copy of the 1.32 cycle identified**; the row is 1.31's. A later copy than
    1.31's, ashierj/superdemo 86435b28282edfa56ab3990aec6f7829df5c6243 (a vendored tree: after
    #122812, ``RegisterMetrics(mode)``; before ``pkg/proxy/runner``), has the same expected
    text line for line, the firewall-ips comment included.
  - 1.33: aojea/kubernetes 492140aedb62cb751e20c9ad71831642b8635c69 (``pkg/proxy/runner``,
    the 1.33 cycle; ``nftables_1.33_overall.txt``).
  - 1.34-1.35: kubernetes/kubernetes 81810de635aa13aa0a32992f6def3aa9d6025ebc
    (``nftables_overall.txt``; 030880a5dc54 and the later danwinship/kubernetes 6c763fd5abda,
    which imports ``k8s.io/utils/net/v2``, hold the same expected text).
  - 1.36: jesseward/kubernetes 5ec89f49a148ef4fe3e3ef231676f174caf47280
    (``nftables_1.36_overall.txt``: #135800 and #136499 in, #140723 not; its test gives every
    endpoint a NodeName) and a real v1.36.2 node's listing (``nftables_1.36_node.txt``);
    the same copy's TestBadIPs, TestSyncProxyRulesStartup and TestSyncProxyRulesRepeated
    ("Add an endpoint to a service") states: ``nftables_1.36_badips.txt``, ``_startup.txt``,
    ``_repeated.txt``.
  - 1.37, master: **no test text**; 1.36's golden with PR #140723's description applied.

* nftables base-chain layout (``nft_layout``, ``NFT_LAYOUTS``):

  - ``dnat-1`` (1.29, the alpha): filter chains on input/forward/output at DNAT priority - 1,
    firewall and endpoint checks in all three (#122614's description of what it changed; the
    tnqn/kubernetes d846dce5 copy has exactly these jumps), and ``filter-forward jump
    forward`` to ``ct state invalid drop`` (in both tnqn/kubernetes copies of the 1.30 cycle,
    placed as they place it; #122663, 1.30 cycle, removed it).
  - ``dnat-10-single-check`` (1.30): ``filter-prerouting``/``-input``/``-forward``/``-output``
    at -110, ``filter-output-post-dnat`` at -90 (#122614, #122692), one ``endpoints-check``.
  - ``dnat-10`` (1.31-1.33): as 1.30 with the endpoint checks split.
  - ``pre-dnat`` (1.34-): ``filter-prerouting-pre-dnat``/``filter-output-pre-dnat`` at -110,
    input/forward/output at 0 (#132456, merged 2025-07, 1.34).
* ``nft_nodeports_default_primary`` (1.31-): unset nodePortAddresses is the node's primary IP
  (#123105, CHANGELOG-1.31: "enabled by default with the nftables backend"; the 1.31 copy's
  fake proxier: ``NewNodePortAddresses(ipFamily, nil, nodeIP)`` gives
  ``nodeport-ips { 192.168.0.2 }``); in the 1.30 copy nil gives ``fib daddr type local``.
* ``nft_firewall_element_comment`` (1.29-1.32): ``firewall-ips`` elements carry
  ``comment "ns5/svc5:p80"`` in the 1.30 and 1.31 copies, not in the 1.33 and 1.35 ones (the
  PR was not found; 1.32, without text, is taken to be 1.31).
* ``nft_masq_rule_port``: the ClusterIP masquerade rule matches ``tcp dport`` (in the 1.30,
  1.31 and 1.33 copies, absent from the 1.34-1.35 one; placed at 1.34 with the layout change,
  the exact PR was not found).
* ``nft_mark_chain`` off, ``nft_clusterip_masq_in_services``, ``nft_dnat_in_service_chain``
  (1.36-): #135800 (drop the ``mark-for-masquerade`` chain, inline ``mark set``) and #136499
  (``hairpin-connections`` set, DNAT by ``numgen`` map in the service chain, no per-endpoint
  chains; the external chain's inline ``mark set`` carries ``comment "masquerade"``). Golden:
  jesseward/kubernetes 5ec89f49's TestOverallNFTablesRules and a real v1.36.2 node's ``nft list
  table ip kube-proxy`` (the write-up quoted in tests/kubeproxy/golden/nftables_1.36_node.txt).
* ``nft_single_endpoint_plain_dnat`` (1.37-): #140723 (merged 2026-07, "avoid numgen map for
  single-endpoint service DNAT"; its text names 1.38 for the bigger refactor, so 1.37 is taken
  to carry it).

ipvs mode (``kubeproxy/ipvs.py``; read in ``pkg/proxy/ipvs/proxier.go``, the stored copy with
``KUBE-IPVS-OUT-FILTER`` and ``pkg/proxy/conntrack``, index id 32359423, and its
``proxier_test.go``, index id 11084498 — both of the 1.30-1.32 cycle):

* ``ipvs_external_ip_local_set``: externalIPs of ETP=Local Services go to
  ``KUBE-EXTERNAL-IP-LOCAL`` (not masqueraded). Releases before it (kubernetes#62537) put every
  externalIP in ``KUBE-EXTERNAL-IP`` and masqueraded it; every supported row has the set.
* ``ipvs_out_filter``: ``KUBE-IPVS-OUT-FILTER`` drops node-originated traffic to an LB IP whose
  ``loadBalancerSourceRanges`` do not hold the node IP (kubernetes#119656).
* ``ipvs_deprecated``: the ipvs proxier is deprecated upstream from 1.35 (issue #13's account);
  the rules are unchanged, ``Ruleset.notes`` says so.

iptables mode (``TestOverallIPTablesRules``, tests/kubeproxy/golden):

* ``ipt_nfacct_counters`` (1.31-): #122812 (``-m nfacct --nfacct-name
  ct_state_invalid_dropped_pkts`` on the INVALID drop) and #125015 (localhost NodePort rules
  counted by ``localhost_nps_accepted_pkts``), both in CHANGELOG-1.31 (its text as stored in
  the index, id 30191905148). Golden before them: danwinship/kubernetes ef85e122
  (``iptables_pre_nfacct_overall.txt``, master in the 1.31 cycle before #122812 merged: the
  rules of 1.29-1.30, and of 1.31+ on a node without nfacct); after them:
  jesseward/kubernetes 5ec89f49 (``iptables_overall.txt``, the 1.36 cycle; a stored copy of
  kubernetes/kubernetes, index id 191206484, with no commit recorded, has the same text). The
  first sync of TestSyncProxyRulesRepeated (``iptables_sync_repeated_initial.txt``) is
  danwinship/kubernetes ef85e122's text. No other iptables rule difference between 1.29 and
  master was found in the copies read; no copy of a 1.29 or 1.30 release branch was found.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sourceip.cluster.model import kube_proxy_release_text
from sourceip.errors import ValidationError

__all__ = [
    "DEFAULT_VERSION",
    "DEVELOPMENT_VERSION",
    "NFT_LAYOUTS",
    "RELEASES",
    "NftLayout",
    "normalize_version",
    "Release",
    "release",
    "supported_versions",
]

NftLayoutName = Literal["dnat-1", "dnat-10-single-check", "dnat-10", "pre-dnat"]
_G_IPVS = "kubernetes/kubernetes pkg/proxy/ipvs/proxier_test.go (index id 11084498)"


@dataclass(frozen=True, slots=True)
class NftLayout:
    """The nftables base chains of one layout and the ``ct state new`` jumps they hold.

    ``base_chains``: (name, type, hook, priority); ``jumps``: (from chain, to chain) in the
    order kube-proxy adds them (``nftablesJumpChains``). ``endpoint_checks`` names the chain(s)
    holding the no-endpoint vmaps: one ``endpoints-check`` (services and nodeports) or the
    split ``service-endpoints-check`` / ``nodeport-endpoints-check``. ``forward_invalid_drop``:
    a ``forward`` chain holding ``ct state invalid drop``, jumped to from ``filter-forward``
    right after its endpoints check (removed by #122663 in the 1.30 cycle)."""

    name: NftLayoutName
    base_chains: tuple[tuple[str, str, str, int], ...]
    jumps: tuple[tuple[str, str], ...]
    split_endpoint_checks: bool
    cluster_ips_check: bool
    forward_invalid_drop: bool = False


# The 1.30-1.33 base chains (#122614: DNATPriority-10; #122692: filter-output-post-dnat).
_DNAT10_BASE_CHAINS: tuple[tuple[str, str, str, int], ...] = (
    ("filter-prerouting", "filter", "prerouting", -110),
    ("filter-forward", "filter", "forward", -110),
    ("filter-input", "filter", "input", -110),
    ("filter-output", "filter", "output", -110),
    ("filter-output-post-dnat", "filter", "output", -90),
    ("nat-output", "nat", "output", -100),
    ("nat-postrouting", "nat", "postrouting", 100),
    ("nat-prerouting", "nat", "prerouting", -100),
)

NFT_LAYOUTS: dict[NftLayoutName, NftLayout] = {
    # 1.29: filterPriority = DNATPriority - 1 on input/forward/output (#122614's "before").
    "dnat-1": NftLayout(
        name="dnat-1",
        base_chains=(
            ("filter-forward", "filter", "forward", -101),
            ("filter-input", "filter", "input", -101),
            ("filter-output", "filter", "output", -101),
            ("nat-output", "nat", "output", -100),
            ("nat-postrouting", "nat", "postrouting", 100),
            ("nat-prerouting", "nat", "prerouting", -100),
        ),
        jumps=(
            ("filter-input", "endpoints-check"),
            ("filter-forward", "endpoints-check"),
            ("filter-output", "endpoints-check"),
            ("filter-input", "firewall-check"),
            ("filter-forward", "firewall-check"),
            ("filter-output", "firewall-check"),
        ),
        split_endpoint_checks=False,
        cluster_ips_check=False,
        forward_invalid_drop=True,
    ),
    # 1.30: nftablesJumpChains of openshift/kubernetes 84a2e12f (pkg/proxy/nftables/proxier.go):
    # the -110/-90 chains of #122614/#122692, one endpoints-check for services and nodeports.
    "dnat-10-single-check": NftLayout(
        name="dnat-10-single-check",
        base_chains=_DNAT10_BASE_CHAINS,
        jumps=(
            ("filter-input", "endpoints-check"),
            ("filter-forward", "endpoints-check"),
            ("filter-output", "endpoints-check"),
            ("filter-prerouting", "firewall-check"),
            ("filter-output", "firewall-check"),
            ("filter-forward", "cluster-ips-check"),
            ("filter-output-post-dnat", "cluster-ips-check"),
        ),
        split_endpoint_checks=False,
        cluster_ips_check=True,
    ),
    # 1.31-1.33: baseRules of danwinship/kubernetes ef85e122 (1.31) = aojea/kubernetes 492140ae.
    "dnat-10": NftLayout(
        name="dnat-10",
        base_chains=_DNAT10_BASE_CHAINS,
        jumps=(
            ("filter-prerouting", "firewall-check"),
            ("filter-forward", "service-endpoints-check"),
            ("filter-forward", "cluster-ips-check"),
            ("filter-input", "nodeport-endpoints-check"),
            ("filter-input", "service-endpoints-check"),
            ("filter-output", "service-endpoints-check"),
            ("filter-output", "firewall-check"),
            ("filter-output-post-dnat", "cluster-ips-check"),
        ),
        split_endpoint_checks=True,
        cluster_ips_check=True,
    ),
    # 1.34-: baseRules of kubernetes/kubernetes 81810de6 (#132456).
    "pre-dnat": NftLayout(
        name="pre-dnat",
        base_chains=(
            ("filter-prerouting-pre-dnat", "filter", "prerouting", -110),
            ("filter-output-pre-dnat", "filter", "output", -110),
            ("filter-forward", "filter", "forward", 0),
            ("filter-input", "filter", "input", 0),
            ("filter-output", "filter", "output", 0),
            ("nat-output", "nat", "output", -100),
            ("nat-postrouting", "nat", "postrouting", 100),
            ("nat-prerouting", "nat", "prerouting", -100),
        ),
        jumps=(
            ("filter-prerouting-pre-dnat", "firewall-check"),
            ("filter-output-pre-dnat", "firewall-check"),
            ("filter-forward", "service-endpoints-check"),
            ("filter-forward", "cluster-ips-check"),
            ("filter-input", "nodeport-endpoints-check"),
            ("filter-input", "service-endpoints-check"),
            ("filter-output", "service-endpoints-check"),
            ("filter-output", "cluster-ips-check"),
        ),
        split_endpoint_checks=True,
        cluster_ips_check=True,
    ),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Release:
    """One kube-proxy minor release (or the development branch) as feature flags.

    nftables mode:

    * ``nft_layout``: the base-chain layout (``NFT_LAYOUTS``).
    * ``nft_masq_rule_port``: the ClusterIP masquerade rule also matches ``PROTO dport PORT``.
    * ``nft_mark_chain``: marking is ``jump mark-for-masquerade`` (a chain holding ``mark set
      mark or MARK``); off: the ``mark set`` statement is inlined where the jump was.
    * ``nft_clusterip_masq_in_services``: the ClusterIP masquerade rule is one rule in
      ``services`` keyed on ``@cluster-ips`` instead of one per service chain.
    * ``nft_dnat_in_service_chain``: the service chain DNATs with ``dnat ip addr . port to
      numgen random mod N map { ... }`` (no per-endpoint chains, except for ClientIP
      affinity), and hairpin traffic is masqueraded through the ``hairpin-connections`` set
      instead of an ``ip saddr EP jump mark-for-masquerade`` rule per endpoint.
    * ``nft_single_endpoint_plain_dnat``: a service chain with one endpoint DNATs with a
      plain ``dnat to IP:PORT`` (no map).
    * ``nft_nodeports_default_primary``: unset ``nodePortAddresses`` means the node's primary
      IP (a ``nodeport-ips`` set); off: every local address (``fib daddr type local``).
    * ``nft_firewall_element_comment``: ``firewall-ips`` elements carry the ``ns/svc:port``
      comment, as ``no-endpoint-*`` elements do.

    iptables mode:

    * ``ipt_nfacct_counters``: kube-proxy creates its nfacct counters (when the node allows)
      and writes ``-m nfacct`` on the INVALID drop and localhost NodePort rules.

    ``nft_golden`` / ``ipt_golden``: where this row's expected dumps come from (None: no
    upstream text was available; the row is inferred from the pull requests named in the
    module docstring and only checked for loading and packet flows)."""

    version: str
    development: bool = False
    nft_layout: NftLayoutName
    nft_masq_rule_port: bool
    nft_mark_chain: bool = True
    nft_clusterip_masq_in_services: bool = False
    nft_dnat_in_service_chain: bool = False
    nft_single_endpoint_plain_dnat: bool = False
    nft_nodeports_default_primary: bool = True
    nft_firewall_element_comment: bool = False
    nft_golden: str | None = None
    ipt_nfacct_counters: bool = True
    ipt_golden: str | None = "jesseward/kubernetes 5ec89f49a148ef4fe3e3ef231676f174caf47280"
    ipvs_external_ip_local_set: bool = True
    ipvs_out_filter: bool = True
    ipvs_deprecated: bool = False
    ipvs_golden: str | None = _G_IPVS

    @property
    def layout(self) -> NftLayout:
        return NFT_LAYOUTS[self.nft_layout]

    @property
    def label(self) -> str:
        """``1.36`` or ``1.38 (development branch)``."""
        return f"{self.version} (development branch)" if self.development else self.version


_G_IPT_PRE_NFACCT = "danwinship/kubernetes ef85e1223bdc6b1c637397935c76afde2d5d4db5"
_G_130 = "openshift/kubernetes 84a2e12f4ce83374e4ec7214855ca801c86f3957"
_G_131 = "danwinship/kubernetes ef85e1223bdc6b1c637397935c76afde2d5d4db5"
_G_DNAT10 = "aojea/kubernetes 492140aedb62cb751e20c9ad71831642b8635c69"
_G_PREDNAT = "kubernetes/kubernetes 81810de635aa13aa0a32992f6def3aa9d6025ebc"
_G_136 = ("jesseward/kubernetes 5ec89f49a148ef4fe3e3ef231676f174caf47280 + a real v1.36.2 "
          "node's nft list (write-up)")

RELEASES: tuple[Release, ...] = (
    Release(version="1.29", nft_layout="dnat-1", nft_masq_rule_port=True,
            nft_nodeports_default_primary=False, nft_firewall_element_comment=True,
            ipt_nfacct_counters=False, ipt_golden=_G_IPT_PRE_NFACCT),
    Release(version="1.30", nft_layout="dnat-10-single-check", nft_masq_rule_port=True,
            nft_nodeports_default_primary=False, nft_firewall_element_comment=True,
            nft_golden=_G_130, ipt_nfacct_counters=False, ipt_golden=_G_IPT_PRE_NFACCT),
    Release(version="1.31", nft_layout="dnat-10", nft_masq_rule_port=True,
            nft_firewall_element_comment=True, nft_golden=_G_131),
    Release(version="1.32", nft_layout="dnat-10", nft_masq_rule_port=True,
            nft_firewall_element_comment=True),
    Release(version="1.33", nft_layout="dnat-10", nft_masq_rule_port=True,
            nft_golden=_G_DNAT10),
    Release(version="1.34", nft_layout="pre-dnat", nft_masq_rule_port=False),
    Release(version="1.35", ipvs_deprecated=True, nft_layout="pre-dnat", nft_masq_rule_port=False,
            nft_golden=_G_PREDNAT),
    Release(version="1.36", ipvs_deprecated=True, nft_layout="pre-dnat", nft_masq_rule_port=False,
            nft_mark_chain=False, nft_clusterip_masq_in_services=True,
            nft_dnat_in_service_chain=True, nft_golden=_G_136),
    Release(version="1.37", ipvs_deprecated=True, nft_layout="pre-dnat", nft_masq_rule_port=False,
            nft_mark_chain=False, nft_clusterip_masq_in_services=True,
            nft_dnat_in_service_chain=True, nft_single_endpoint_plain_dnat=True),
    Release(version="1.38", development=True, ipvs_deprecated=True, nft_layout="pre-dnat",
            nft_masq_rule_port=False,
            nft_mark_chain=False, nft_clusterip_masq_in_services=True,
            nft_dnat_in_service_chain=True, nft_single_endpoint_plain_dnat=True),
)

_BY_VERSION = {r.version: r for r in RELEASES}
DEVELOPMENT_VERSION = next(r.version for r in RELEASES if r.development)
# The newest release with golden data for both modes (the development branch's nftables golden
# is reconstructed from pull requests, so it is not the default).
DEFAULT_VERSION = "1.36"
_ALIASES = {"master": DEVELOPMENT_VERSION}


def supported_versions() -> tuple[str, ...]:
    return tuple(r.version for r in RELEASES)


def normalize_version(text: str) -> str:
    """``v1.35.2`` / ``1.35`` / ``master`` -> ``1.35`` / ``1.38``; empty -> the default.
    Raises ``ValidationError`` (field ``kubeProxyVersion``) for a release not in the table."""
    try:
        t = kube_proxy_release_text(text)
    except ValueError as exc:
        raise ValidationError(str(exc), field="kubeProxyVersion") from None
    if not t:
        return DEFAULT_VERSION
    t = _ALIASES.get(t, t)
    if t not in _BY_VERSION:
        raise ValidationError(
            f"{text!r}: kube-proxy releases with modelled rules are "
            f"{', '.join(supported_versions())} (master = {DEVELOPMENT_VERSION})",
            field="kubeProxyVersion")
    return t


def release(version: str = "") -> Release:
    """The row for ``version`` (any form ``normalize_version`` reads; empty: the default)."""
    return _BY_VERSION[normalize_version(version)]
