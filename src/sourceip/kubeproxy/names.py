"""Chain names kube-proxy derives from a service port, for the iptables and nftables modes.

iptables mode (``pkg/proxy/iptables/proxier.go``): ``portProtoHash`` is the first 16 characters
of the base32 (RFC 4648, upper case, padded) encoding of sha256(servicePortName + protocol), where
servicePortName is ``ServicePortName.String()`` (``ns/name:port`` or ``ns/name`` when the port is
unnamed) and protocol is lower case. ``KUBE-SVC-``/``KUBE-SVL-``/``KUBE-EXT-``/``KUBE-FW-`` share
that hash; ``KUBE-SEP-`` hashes servicePortName + protocol + endpoint (``ip:port``, IPv6 in
brackets).

nftables mode (``pkg/proxy/nftables/proxier.go``): ``servicePortChainNameBase`` is
``hashAndTruncate("ns/name/proto/port")``: 8 characters of base32(sha256(name)), ``-``, the name,
truncated to 240 characters with ``...``. ``servicePortEndpointChainNameBase`` does the same with
``ns/name/proto/port__ip/port`` (IPv6 colons become dots). Chains are the base with a prefix:
``service-``, ``local-``, ``external-``, ``firewall-``, ``endpoint-``; affinity sets use
``affinity-`` with the endpoint base.
"""

from __future__ import annotations

import hashlib

from sourceip.net.addr import join_host_port

__all__ = [
    "EXT_PREFIX",
    "b32_prefix",
    "FW_PREFIX",
    "NFT_AFFINITY_PREFIX",
    "NFT_ENDPOINT_PREFIX",
    "NFT_EXTERNAL_PREFIX",
    "NFT_FIREWALL_PREFIX",
    "NFT_LOCAL_PREFIX",
    "NFT_SERVICE_PREFIX",
    "SEP_PREFIX",
    "SVC_PREFIX",
    "SVL_PREFIX",
    "endpoint_string",
    "nft_affinity_set_name",
    "nft_endpoint_chain_name",
    "nft_endpoint_chain_name_base",
    "nft_external_chain_name",
    "nft_firewall_chain_name",
    "nft_local_chain_name",
    "nft_service_chain_name",
    "nft_service_port_chain_name_base",
    "port_proto_hash",
    "service_external_chain_name",
    "service_firewall_chain_name",
    "service_port_chain_name",
    "service_port_endpoint_chain_name",
    "service_port_local_chain_name",
    "service_port_name",
]

SVC_PREFIX = "KUBE-SVC-"
SVL_PREFIX = "KUBE-SVL-"
EXT_PREFIX = "KUBE-EXT-"
FW_PREFIX = "KUBE-FW-"
SEP_PREFIX = "KUBE-SEP-"

NFT_SERVICE_PREFIX = "service-"
NFT_LOCAL_PREFIX = "local-"
NFT_EXTERNAL_PREFIX = "external-"
NFT_FIREWALL_PREFIX = "firewall-"
NFT_ENDPOINT_PREFIX = "endpoint-"
NFT_AFFINITY_PREFIX = "affinity-"

NFT_CHAIN_NAME_BASE_LENGTH_MAX = 240


_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
# Every 10-bit value as its two base32 characters: 16 characters of base32 are 8 lookups.
_B32_PAIRS = tuple(a + b for a in _B32 for b in _B32)


def b32_prefix(data: bytes, chars: int) -> str:
    """The first ``chars`` (8 or 16) characters of ``base64.b32encode(data)`` for ``data`` of at
    least ``chars * 5 // 8`` bytes (base32 maps each 5 bytes to 8 characters, so the prefix only
    depends on those bytes)."""
    nbytes = chars * 5 // 8
    n = int.from_bytes(data[:nbytes], "big")
    pairs = _B32_PAIRS
    shift = nbytes * 8 - 10
    out = []
    while shift >= 0:
        out.append(pairs[(n >> shift) & 1023])
        shift -= 10
    return "".join(out)


def _b32_sha256(text: str, chars: int) -> str:
    """The first ``chars`` base32 characters of sha256(text), as kube-proxy takes them."""
    return b32_prefix(hashlib.sha256(text.encode()).digest(), chars)


def service_port_name(namespace: str, name: str, port_name: str = "") -> str:
    """``ServicePortName.String()``: ``ns/name:port``, or ``ns/name`` for an unnamed port."""
    return f"{namespace}/{name}:{port_name}" if port_name else f"{namespace}/{name}"


def endpoint_string(ip: str, port: int) -> str:
    """``BaseEndpointInfo.String()`` (``net.JoinHostPort``): ``ip:port``, ``[ip6]:port``."""
    return join_host_port(ip, port)


# ----------------------------------------------------------------------------- iptables


def port_proto_hash(svc_port_name: str, protocol: str) -> str:
    """kube-proxy's ``portProtoHash``: 16 base32 characters of sha256(name + protocol)."""
    return _b32_sha256(svc_port_name + protocol.lower(), 16)


def service_port_chain_name(svc_port_name: str, protocol: str) -> str:
    """``KUBE-SVC-<hash>``: dispatch to the Cluster-policy endpoints."""
    return SVC_PREFIX + port_proto_hash(svc_port_name, protocol)


def service_port_local_chain_name(svc_port_name: str, protocol: str) -> str:
    """``KUBE-SVL-<hash>``: dispatch to the Local-policy endpoints."""
    return SVL_PREFIX + port_proto_hash(svc_port_name, protocol)


def service_external_chain_name(svc_port_name: str, protocol: str) -> str:
    """``KUBE-EXT-<hash>``: entry for externalIP / LB IP / NodePort traffic."""
    return EXT_PREFIX + port_proto_hash(svc_port_name, protocol)


def service_firewall_chain_name(svc_port_name: str, protocol: str) -> str:
    """``KUBE-FW-<hash>``: loadBalancerSourceRanges filtering."""
    return FW_PREFIX + port_proto_hash(svc_port_name, protocol)


def service_port_endpoint_chain_name(svc_port_name: str, protocol: str, endpoint: str) -> str:
    """``KUBE-SEP-<hash>`` for ``endpoint`` (an ``ip:port`` string, see ``endpoint_string``)."""
    return SEP_PREFIX + _b32_sha256(svc_port_name + protocol.lower() + endpoint, 16)


# ----------------------------------------------------------------------------- nftables


def _hash_and_truncate(name: str) -> str:
    out = _b32_sha256(name, 8) + "-" + name
    if len(out) > NFT_CHAIN_NAME_BASE_LENGTH_MAX:
        out = out[: NFT_CHAIN_NAME_BASE_LENGTH_MAX - 3] + "..."
    return out


def nft_service_port_chain_name_base(
    namespace: str, name: str, protocol: str, port_name: str
) -> str:
    """``servicePortChainNameBase``: e.g. ``ULMVA6XW-ns1/svc1/tcp/p80``."""
    return _hash_and_truncate(f"{namespace}/{name}/{protocol.lower()}/{port_name}")


def nft_endpoint_chain_name_base(
    namespace: str, name: str, protocol: str, port_name: str, endpoint: str
) -> str:
    """``servicePortEndpointChainNameBase``: e.g. ``5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80``.
    ``endpoint`` is ``ip:port`` (``[ip6]:port``); IPv6 colons become dots."""
    ip, _, port = endpoint.rpartition(":")
    ip = ip.strip("[]").replace(":", ".")
    return _hash_and_truncate(
        f"{namespace}/{name}/{protocol.lower()}/{port_name}__{ip}/{port}"
    )


def nft_service_chain_name(namespace: str, name: str, protocol: str, port_name: str) -> str:
    """``service-<base>`` (≙ KUBE-SVC)."""
    return NFT_SERVICE_PREFIX + nft_service_port_chain_name_base(
        namespace, name, protocol, port_name
    )


def nft_local_chain_name(namespace: str, name: str, protocol: str, port_name: str) -> str:
    """``local-<base>`` (≙ KUBE-SVL)."""
    return NFT_LOCAL_PREFIX + nft_service_port_chain_name_base(
        namespace, name, protocol, port_name
    )


def nft_external_chain_name(namespace: str, name: str, protocol: str, port_name: str) -> str:
    """``external-<base>`` (≙ KUBE-EXT)."""
    return NFT_EXTERNAL_PREFIX + nft_service_port_chain_name_base(
        namespace, name, protocol, port_name
    )


def nft_firewall_chain_name(namespace: str, name: str, protocol: str, port_name: str) -> str:
    """``firewall-<base>`` (≙ KUBE-FW)."""
    return NFT_FIREWALL_PREFIX + nft_service_port_chain_name_base(
        namespace, name, protocol, port_name
    )


def nft_endpoint_chain_name(
    namespace: str, name: str, protocol: str, port_name: str, endpoint: str
) -> str:
    """``endpoint-<endpoint base>`` (≙ KUBE-SEP)."""
    return NFT_ENDPOINT_PREFIX + nft_endpoint_chain_name_base(
        namespace, name, protocol, port_name, endpoint
    )


def nft_affinity_set_name(
    namespace: str, name: str, protocol: str, port_name: str, endpoint: str
) -> str:
    """``affinity-<endpoint base>``: the per-endpoint session-affinity set."""
    return NFT_AFFINITY_PREFIX + nft_endpoint_chain_name_base(
        namespace, name, protocol, port_name, endpoint
    )
