"""Values of the lab: what a probe is, what was predicted, what was observed, and the plan.

Probe and prediction values are the interface the explain engine feeds the lab
(``sourceip.explain.lab_predictions(cluster) -> list[Prediction]``). Plan values are what
``lab.plan`` computes (pure) and ``lab.run`` executes; every command a plan holds is text that
``ip -batch`` / ``bridge -batch`` accept, so the dry-run script and the real run share one truth.

All values are frozen and validate on construction; a bad field raises ``ValidationError``
naming it.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Literal

from sourceip.errors import ValidationError

# "failed": an HTTP request reached the proxy in front (an ingress controller) but the proxy
# answered by itself (an error status) or closed the connection: the backend never saw it.
Disposition = Literal["delivered", "dropped", "rejected", "failed"]
ObservedDisposition = Literal["delivered", "dropped", "rejected", "failed", "error"]
DISPOSITIONS: tuple[str, ...] = ("delivered", "dropped", "rejected", "failed")
PROBE_PROTOCOLS: tuple[str, ...] = ("tcp", "udp", "http")
Headers = tuple[tuple[str, str], ...]

_CLIENT_RE = re.compile(r"^(external|node/[^/\s]+|pod/[^/\s]+/[^/\s]+)$")


def _check(cond: bool, field_path: str, message: str) -> None:
    if not cond:
        raise ValidationError(message, field=field_path)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_endpoint(text: str) -> bool:
    """``ip:port`` (IPv4) or ``[ip]:port`` (IPv6)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) <= 65535:
        return False
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return _is_ip(host)


def endpoint_ip(endpoint: str) -> str:
    """The address part of ``ip:port`` / ``[ip]:port``."""
    host = endpoint.rpartition(":")[0]
    return host[1:-1] if host.startswith("[") else host


# ----------------------------------------------------------------------------- probes


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeSpec:
    """One connection to make in the lab.

    ``client`` is ``pod/NS/NAME``, ``node/NAME`` or ``external``. ``via_node`` names the node
    that receives the packet on paths where the network (not the client) picks it: an external
    client's LoadBalancer IP or externalIP (the lab's router sends it to that node). For a
    NodePort the destination address already names the node; ``via_node`` is then descriptive.

    ``proto`` ``http`` is an HTTP request over TCP (``GET http_path`` with ``Host: http_host``
    and ``http_headers``), for paths through an ingress controller. ``via_lb``: the packet goes
    through the lab's load balancer (the router's pool for the LoadBalancer IP), not to a node
    chosen by the probe.
    """

    id: str
    client: str
    proto: str = "tcp"
    dst_ip: str
    dst_port: int
    via_node: str | None = None
    description: str = ""
    http_host: str = ""
    http_path: str = "/"
    http_headers: Headers = ()
    via_lb: bool = False

    def __post_init__(self) -> None:
        _check(bool(self.id), "id", "a probe needs an id")
        _check(
            bool(_CLIENT_RE.match(self.client)),
            "client",
            f"{self.client!r} is not pod/NS/NAME, node/NAME or external",
        )
        _check(self.proto in PROBE_PROTOCOLS, "proto",
               f"{self.proto!r}: the lab probes tcp/udp/http")
        _check(self.http_path.startswith("/"), "http_path",
               f"{self.http_path!r} does not start with /")
        for i, (name, value) in enumerate(self.http_headers):
            _check(bool(re.match(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", name))
                   and "\n" not in value and "\r" not in value,
                   f"http_headers[{i}]", f"{name!r}: {value!r} is not a valid header")
        _check(not (self.via_lb and self.via_node), "via_lb",
               "a probe goes through the load balancer or to one node, not both")
        _check(_is_ip(self.dst_ip), "dst_ip", f"{self.dst_ip!r} is not an IP address")
        _check(
            isinstance(self.dst_port, int) and 0 < self.dst_port <= 65535,
            "dst_port",
            f"{self.dst_port} is outside 1-65535",
        )

    @property
    def client_kind(self) -> str:
        """``pod``, ``node`` or ``external``."""
        return self.client.split("/", 1)[0]

    @property
    def l4_proto(self) -> str:
        """The transport protocol (``tcp`` for ``http``)."""
        return "tcp" if self.proto == "http" else self.proto

    @property
    def target(self) -> str:
        host = f"[{self.dst_ip}]" if ":" in self.dst_ip else self.dst_ip
        if self.proto == "http":
            extra = "".join(f" +{n}: {v}" for n, v in self.http_headers)
            return f"http://{self.http_host or host}{self.http_path} at {host}:{self.dst_port}" \
                + extra
        return f"{self.proto}/{host}:{self.dst_port}"

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "id": self.id,
            "client": self.client,
            "proto": self.proto,
            "dst_ip": self.dst_ip,
            "dst_port": self.dst_port,
            "via_node": self.via_node,
            "description": self.description,
        }
        if self.via_lb:
            out["via_lb"] = True
        if self.proto == "http":
            out["http"] = {"host": self.http_host, "path": self.http_path,
                           "headers": [list(h) for h in self.http_headers]}
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class PredictedOutcome:
    """One possible result of a probe. ``endpoint`` is ``ip:port`` of the pod (or node) that
    answers and ``seen_source`` the source address it sees; both are ``None`` unless
    ``disposition`` is ``delivered``.

    For an HTTP probe through a controller, ``seen_source`` is the backend's peer (the
    controller pod), ``headers`` the request headers the backend receives (each one named here
    is compared; ``None``: not predicted), ``resolved_client`` the address the app's strategy
    resolves from peer + headers (compared when ``Prediction.strategy`` is set). ``proxy_source``:
    the source address of the PROXY protocol header the backend receives (``None``: none).
    ``note``: what this branch is (e.g. "via node1, controller sees 10.0.0.12")."""

    probability: float
    disposition: Disposition
    endpoint: str | None = None
    seen_source: str | None = None
    headers: Headers | None = None
    resolved_client: str | None = None
    proxy_source: str | None = None
    note: str = ""

    def __post_init__(self) -> None:
        _check(0.0 <= self.probability <= 1.0, "probability",
               f"{self.probability} is outside 0-1")
        _check(self.disposition in DISPOSITIONS, "disposition",
               f"{self.disposition!r} is not one of {', '.join(DISPOSITIONS)}")
        if self.disposition == "delivered":
            _check(self.endpoint is not None and _is_endpoint(self.endpoint), "endpoint",
                   f"{self.endpoint!r}: a delivered outcome needs ip:port")
            _check(self.seen_source is not None and _is_ip(self.seen_source), "seen_source",
                   f"{self.seen_source!r}: a delivered outcome needs the source IP seen")
        else:
            _check(self.endpoint is None and self.seen_source is None, "endpoint",
                   f"a {self.disposition} outcome has no endpoint or seen_source")
        _check(self.resolved_client is None or _is_ip(self.resolved_client), "resolved_client",
               f"{self.resolved_client!r} is not an IP address")

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "probability": self.probability,
            "disposition": self.disposition,
            "endpoint": self.endpoint,
            "seen_source": self.seen_source,
        }
        if self.headers is not None:
            out["headers"] = [list(h) for h in self.headers]
        if self.resolved_client is not None or self.headers is not None:
            out["resolved_client"] = self.resolved_client
        if self.proxy_source is not None:
            out["proxy_source"] = self.proxy_source
        if self.note:
            out["note"] = self.note
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Prediction:
    """What the explain engine says a probe will do: every outcome with its probability.

    ``strategy``: the ``sourceip.clientip`` strategy the app should use, as its constructor
    call (``Chain(RightmostTrustedRange(trusted_proxies=[...]), RemoteAddress())``); the lab
    evaluates it on each observed peer + headers and compares the result with the outcome's
    ``resolved_client``. ``kind`` is the explain path kind (``ingress``, ``through-lb``, ...).
    """

    spec: ProbeSpec
    outcomes: tuple[PredictedOutcome, ...]
    strategy: str = ""
    kind: str = ""

    def __post_init__(self) -> None:
        _check(bool(self.outcomes), "outcomes", "a prediction needs at least one outcome")

    @property
    def split(self) -> bool:
        """More than one outcome is possible (worth probing several times)."""
        return sum(1 for o in self.outcomes if o.probability > 0) > 1

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"spec": self.spec.to_json(),
                                  "outcomes": [o.to_json() for o in self.outcomes]}
        if self.strategy:
            out["strategy"] = self.strategy
        if self.kind:
            out["kind"] = self.kind
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Observation:
    """What one real connection did. ``endpoint`` is the ``ip:port`` the answering socket was
    bound to (after any DNAT), ``pod`` the name the echo server reported, ``seen_source`` the
    peer address it saw. ``error`` explains an ``error`` disposition (the probe itself broke)
    and a ``failed`` one (the proxy in front answered ``http_status`` or closed).

    HTTP probes: ``headers`` as the backend received them; ``resolved_client`` is filled by
    the comparison (the prediction's strategy evaluated on ``seen_source`` + ``headers``).
    ``proxy``: the PROXY protocol header the backend decoded (``as_dict``), or its error text.
    """

    spec_id: str
    attempt: int = 0
    disposition: ObservedDisposition
    seen_source: str | None = None
    seen_port: int | None = None
    endpoint: str | None = None
    pod: str | None = None
    error: str = ""
    elapsed_ms: float = 0.0
    http_status: int | None = None
    headers: Headers | None = None
    resolved_client: str | None = None
    proxy: dict[str, object] | str | None = None

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Observation:
        """Build from one JSON line of the probe client (``lab.probe``)."""
        seen_port = data.get("seen_port")
        status = data.get("http_status")
        raw_headers = data.get("headers")
        headers: Headers | None = None
        if isinstance(raw_headers, list):
            headers = tuple((str(h[0]), str(h[1])) for h in raw_headers
                            if isinstance(h, list | tuple) and len(h) == 2)
        proxy = data.get("proxy")
        return cls(
            http_status=int(str(status)) if status is not None else None,
            headers=headers,
            proxy=proxy if isinstance(proxy, dict | str) else None,
            spec_id=str(data["id"]),
            attempt=int(str(data.get("attempt", 0))),
            disposition=str(data["disposition"]),  # type: ignore[arg-type]
            seen_source=_opt_str(data.get("seen_source")),
            seen_port=int(str(seen_port)) if seen_port is not None else None,
            endpoint=_opt_str(data.get("endpoint")),
            pod=_opt_str(data.get("pod")),
            error=str(data.get("error") or ""),
            elapsed_ms=float(str(data.get("elapsed_ms", 0.0))),
        )

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.spec_id,
            "attempt": self.attempt,
            "disposition": self.disposition,
            "seen_source": self.seen_source,
            "seen_port": self.seen_port,
            "endpoint": self.endpoint,
            "pod": self.pod,
            "error": self.error,
            "elapsed_ms": round(self.elapsed_ms, 1),
            **({"http_status": self.http_status} if self.http_status is not None else {}),
            **({"headers": [list(h) for h in self.headers]} if self.headers is not None else {}),
            **({"resolved_client": self.resolved_client}
               if self.resolved_client is not None else {}),
            **({"proxy": self.proxy} if self.proxy is not None else {}),
        }

    def header(self, name: str) -> str | None:
        """Every value of header ``name`` (any case) joined with ``", "``, or ``None``."""
        if self.headers is None:
            return None
        values = [v for n, v in self.headers if n.lower() == name.lower()]
        return ", ".join(values) if values else None

    def summary(self) -> str:
        """``10.244.1.1 at 10.244.1.5:8080 (default/server)``, ``dropped``, ``rejected``."""
        if self.disposition == "delivered":
            who = f" ({self.pod})" if self.pod else ""
            return f"{self.seen_source} at {self.endpoint}{who}"
        if self.disposition in ("error", "failed"):
            return f"{self.disposition}: {self.error}"
        return self.disposition


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class Agreement:
    """A prediction (or none) beside what the probes observed, and whether they agree."""

    spec: ProbeSpec
    prediction: Prediction | None
    observations: tuple[Observation, ...]
    agree: bool
    reason: str = ""

    def to_json(self) -> dict[str, object]:
        return {
            "spec": self.spec.to_json(),
            "predicted": (
                [o.to_json() for o in self.prediction.outcomes] if self.prediction else None
            ),
            "observed": [o.to_json() for o in self.observations],
            "agree": self.agree,
            "reason": self.reason,
        }


# ----------------------------------------------------------------------------- the plan

NamespaceRole = Literal["router", "external", "node", "pod"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LabNamespace:
    """A network namespace of the lab; ``node`` / ``pod`` say what it stands for."""

    name: str
    role: NamespaceRole
    node: str = ""
    pod: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Veth:
    """A veth pair created straight into two namespaces (nothing touches the root namespace)."""

    ns_a: str
    name_a: str
    ns_b: str
    name_b: str

    def __post_init__(self) -> None:
        for f in ("name_a", "name_b"):
            name = getattr(self, f)
            _check(0 < len(name) <= 15, f, f"interface name {name!r} is longer than 15 chars")

    def command(self) -> str:
        """The ``ip`` command (without the leading ``ip``) that creates the pair."""
        return (f"link add {self.name_a} netns {self.ns_a} type veth "
                f"peer name {self.name_b} netns {self.ns_b}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Sysctl:
    """``/proc/sys/<path>`` = ``value``, written inside one namespace."""

    path: str
    value: str
    optional: bool = False  # skip when the kernel lacks the knob (e.g. no br_netfilter)

    @property
    def key(self) -> str:
        return self.path.replace("/", ".")


@dataclass(frozen=True, slots=True, kw_only=True)
class RulesetLoad:
    """Text fed on stdin to ``argv`` run inside a namespace (``iptables-*-restore``, ``nft -f -``).
    ``label`` says whose rules they are (``kube-proxy``, ``cni-egress-masquerade``)."""

    label: str
    argv: tuple[str, ...]
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class NsSetup:
    """Everything done inside one namespace, in order: ``ip`` commands (``ip -batch`` lines),
    ``ip -6`` commands (``ip6``: an ``ip -6 -batch``, the family of ``route``/``rule`` lines is
    not inferred in a batch), ``bridge`` commands, sysctls, nfacct counters, then rule loads."""

    ns: str
    ip: tuple[str, ...] = ()
    ip6: tuple[str, ...] = ()
    bridge: tuple[str, ...] = ()
    sysctls: tuple[Sysctl, ...] = ()
    nfacct: tuple[str, ...] = ()  # counters the rules name (created before they load)
    loads: tuple[RulesetLoad, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class EchoServer:
    """An echo server for one pod (run in the pod's namespace, or the node's for hostNetwork)."""

    ns: str
    pod: str
    tcp_ports: tuple[int, ...] = ()
    udp_ports: tuple[int, ...] = ()
    http_ports: tuple[int, ...] = ()  # TCP ports that wait for an HTTP request / PROXY header

    def argv(self, python: str, runid: str, owner_pid: int | str) -> tuple[str, ...]:
        """The command (run under ``ip netns exec``) that starts it."""
        args = [python, "-m", "sourceip.lab.echo_server", "--run", runid, "--pod", self.pod,
                "--owner-pid", str(owner_pid)]
        if self.tcp_ports:
            args += ["--tcp", ",".join(str(p) for p in self.tcp_ports)]
        if self.http_ports:
            args += ["--http", ",".join(str(p) for p in self.http_ports)]
        if self.udp_ports:
            args += ["--udp", ",".join(str(p) for p in self.udp_ports)]
        return tuple(args)


ProcessRole = Literal["ingress", "loadbalancer", "health"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LabProcess:
    """A program the lab runs in one namespace besides the echo servers: a real ingress
    controller (Debian's ``nginx`` / ``haproxy`` in a controller pod's namespace), the load
    balancer's ``haproxy`` (router namespace), or a node's kube-proxy health server.

    ``argv`` may hold ``{python}`` and ``{owner_pid}``, filled in when it starts. ``files``
    (absolute path, text) are written first, all under ``workdir``, the run's own directory
    (``/run/sourceip-lab/<runid>.d/...``) that teardown removes. ``listen``: TCP ports the
    process must be listening on before probing starts. ``pod``: the pod it stands for."""

    ns: str
    name: str
    role: ProcessRole
    program: str
    argv: tuple[str, ...]
    workdir: str
    files: tuple[tuple[str, str], ...] = ()
    listen: tuple[int, ...] = ()
    pod: str = ""
    node: str = ""

    def command(self, python: str, owner_pid: int | str) -> tuple[str, ...]:
        return tuple(a.replace("{python}", python).replace("{owner_pid}", str(owner_pid))
                     for a in self.argv)


@dataclass(frozen=True, slots=True, kw_only=True)
class LBCheck:
    """The lab load balancer's health check of one node for one Service. ``kind`` ``http`` /
    ``tcp`` / ``none``; ``predicted``: the status code (``"200"``, ``"503"``), ``"open"`` /
    ``"closed"``, or ``"-"`` (no check); ``candidate``: the node is one the LB would send to
    if it passes (not excluded, the L2 leader, a node with endpoints for IP targets...);
    ``target``: ``ip:port`` the LB sends this node's share to."""

    service: str
    node: str
    node_ip: str
    kind: str
    port: int | None
    path: str
    predicted: str
    candidate: bool
    target: str
    family: int = 4  # of the VIP whose load balancer runs this check

    @property
    def id(self) -> str:
        """``service node``, ``service node IPv6`` for the IPv6 VIP's load balancer (a
        dual-stack Service has one per family)."""
        return f"{self.service} {self.node}" + (" IPv6" if self.family == 6 else "")

    def passes(self, status: str) -> bool:
        return status in ("-", "open") or (status.isdigit() and 200 <= int(status) < 300)


@dataclass(frozen=True, slots=True, kw_only=True)
class LabLoadBalancer:
    """A LoadBalancer Service's load balancer, built in the router namespace (from
    ``sourceip.loadbalancer.plan_load_balancer``): ``forwarding`` (ECMP route of the VIP over
    the healthy nodes, or an nft DNAT to their NodePorts) or ``proxying`` (haproxy bound on
    the VIP, ``send-proxy``/``send-proxy-v2``, connecting from ``source_address``)."""

    service: str
    title: str
    vip: str
    port: int
    mode: str
    target: str  # vip | nodePort | pod
    target_port: int
    proxy_protocol: str | None
    source_address: str | None
    checks: tuple[LBCheck, ...]
    leader: str | None = None

    def pool(self, observed: dict[str, str] | None = None) -> tuple[LBCheck, ...]:
        """The nodes the LB sends to: candidates whose check passes (``observed`` status by
        check id; else the predicted status)."""
        return tuple(c for c in self.checks if c.candidate and c.passes(
            (observed or {}).get(c.id, c.predicted)))


@dataclass(frozen=True, slots=True, kw_only=True)
class LabPlan:
    """A cluster's dataplane as namespaces, links, per-namespace setup and echo servers.

    ``clients`` maps a probe client (``pod/NS/NAME``, ``node/NAME``, ``external``) to the
    namespace it runs in; ``via_ports`` maps a node name to the source-port range an external
    probe binds so that the router sends LoadBalancer/externalIP traffic to that node.
    """

    runid: str
    prefix: str
    mode: str
    iptables_backend: str
    namespaces: tuple[LabNamespace, ...]
    veths: tuple[Veth, ...]
    setups: tuple[NsSetup, ...]
    servers: tuple[EchoServer, ...]
    clients: tuple[tuple[str, str], ...]
    via_ports: tuple[tuple[str, tuple[int, int]], ...]
    external_ip: str  # the external client's address of the primary family (IPv4 if built)
    router_ip: str
    node_subnet: str
    rules_loaded: bool
    notes: tuple[str, ...] = ()
    external_ip6: str = ""  # the external client's IPv6 address when IPv6 is built
    families: tuple[int, ...] = (4,)  # the IP families built (4, 6 or both)
    node_ips: tuple[tuple[str, str], ...] = field(default=())
    processes: tuple[LabProcess, ...] = ()
    workdir: str = ""  # the run's directory for process files (removed on teardown)
    # ingress paths whose controller the lab does not run: (controller, reason)
    not_run: tuple[tuple[str, str], ...] = ()
    load_balancers: tuple[LabLoadBalancer, ...] = ()

    def client_ns(self, client: str) -> str | None:
        return dict(self.clients).get(client)

    def via_range(self, node: str) -> tuple[int, int] | None:
        return dict(self.via_ports).get(node)

    @property
    def namespace_names(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.namespaces)
