"""Netfilter rule IR, its renderers and parsers (iptables-save, nft), and its evaluation."""

from __future__ import annotations

from sourceip.netfilter.ir import Ruleset


def render(ruleset: Ruleset) -> str:
    """The ruleset as text its tool loads: iptables-restore input or an ``nft -f`` script."""
    if ruleset.backend == "nftables":
        from sourceip.netfilter.render_nft import render_nft

        return render_nft(ruleset)
    from sourceip.netfilter.render_iptables import render_iptables

    return render_iptables(ruleset)


__all__ = ["Ruleset", "render"]
