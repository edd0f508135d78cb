"""Addresses, ports, prefix sets, five-tuples and packets (stdlib only)."""

from sourceip.net.addr import (
    IPAddress,
    IPNetwork,
    family_of,
    host_port,
    parse_ip,
    parse_network,
    parse_port,
)
from sourceip.net.packet import FiveTuple, Packet
from sourceip.net.prefixset import PrefixSet

__all__ = [
    "FiveTuple",
    "IPAddress",
    "IPNetwork",
    "Packet",
    "PrefixSet",
    "family_of",
    "host_port",
    "parse_ip",
    "parse_network",
    "parse_port",
]
