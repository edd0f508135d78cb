"""Helpers every command shares: where the cluster comes from, and how output is written.

::

    @click.command()
    @cluster_options
    @output_option()
    def rules(filenames: tuple[str, ...], example: str | None, output: str) -> None:
        cluster = load_from_options(filenames, example)
        ...
        emit(data, output)          # json / yaml; text is the command's own rendering
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:  # `sourceip --help` imports this module: keep it light
    from sourceip.cluster.cluster import Cluster
    from sourceip.cluster.model import Service

F = TypeVar("F", bound=Callable[..., Any])


_RANGE_KEY = "sourceip.node_port_range"


def parse_port_range(text: str) -> tuple[int, int]:
    """kube-apiserver's ``--service-node-port-range`` value (``utilnet.ParsePortRange``):
    ``MIN-MAX``, ``BASE+SIZE`` (BASE to BASE+SIZE) or a single port; ``ValueError`` otherwise."""
    t = text.strip()
    try:
        if "-" in t:
            lo_s, hi_s = t.split("-", 1)
            lo, hi = int(lo_s), int(hi_s)
        elif "+" in t:
            base_s, size_s = t.split("+", 1)
            lo = int(base_s)
            hi = lo + int(size_s)
        else:
            lo = hi = int(t)
    except ValueError:
        raise ValueError(f"{text!r} is not a port range (MIN-MAX, e.g. 30000-32767)") from None
    if not 1 <= lo <= hi <= 65535:
        raise ValueError(f"{text!r}: need 1 <= MIN <= MAX <= 65535")
    return lo, hi


def _store_range(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is None:
        return
    try:
        ctx.meta[_RANGE_KEY] = parse_port_range(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


def ip_option_value(ctx: click.Context, param: click.Parameter, value: str | None
                    ) -> str | None:
    """A click callback: the option's value must be an IPv4 or IPv6 address; otherwise a
    usage error (exit 2) naming the option."""
    if value is None:
        return None
    import ipaddress

    try:
        ip = ipaddress.ip_address(value.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an IP address", ctx=ctx,
                                 param=param) from None
    return str(ip)


_KP_VERSION_KEY = "sourceip.kube_proxy_version"


def _store_kp_version(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is None:
        return
    from sourceip.errors import ValidationError
    from sourceip.kubeproxy.releases import normalize_version

    try:
        ctx.meta[_KP_VERSION_KEY] = normalize_version(value)
    except ValidationError as exc:
        raise click.BadParameter(str(exc).split(": ", 1)[-1], ctx=ctx, param=param) from None


def cluster_options(f: F) -> F:
    """Add ``-f/--filename PATH`` (repeatable: a file, a directory or ``-`` for stdin),
    ``--example NAME`` and ``--service-node-port-range MIN-MAX`` to a command; its function
    receives ``filenames`` and ``example`` and passes them to ``load_from_options`` (the range
    travels in the click context, so commands need no parameter for it)."""
    f = click.option(
        "--service-node-port-range", "node_port_range", metavar="MIN-MAX", default=None,
        expose_value=False, callback=_store_range, is_eager=True,
        help="The API server's --service-node-port-range (default 30000-32767): nodePorts of "
             "hand-written manifests must lie in it, and missing ones are allocated from it. "
             "Objects read from a cluster (with metadata.uid or resourceVersion) are accepted "
             "outside it, with a note.")(f)
    f = click.option(
        "--kube-proxy-version", "kube_proxy_version", metavar="1.NN", default=None,
        expose_value=False, callback=_store_kp_version, is_eager=True,
        help="The kube-proxy release whose rules to build (1.29 ... master; default: the "
             "input's sourceip.dev/kubeProxyVersion annotation, else the newest release with "
             "golden data).")(f)
    f = click.option(
        "--example", "example", metavar="NAME", default=None,
        help="Use a built-in example cluster (see `sourceip examples`).")(f)
    f = click.option(
        "-f", "--filename", "filenames", metavar="PATH", multiple=True,
        help="Manifests: a YAML/JSON file, a directory of them, or - for stdin "
             "(kubectl get -o yaml|json output works as is). Repeatable.")(f)
    return live_options(f)


def load_from_options(filenames: Sequence[str], example: str | None) -> Cluster:
    """The cluster named by the options: exactly one of ``-f`` (any number of times) or
    ``--example``, else a usage error (exit 2). Input errors propagate as ``InputError``
    (exit 1, ``error: file:line: field: message``); input that holds no object sourceip reads
    is an ``InputError`` too, saying what to feed."""
    from sourceip.sources import DEFAULT_NODE_PORT_RANGE, load_cluster, load_example

    ctx = click.get_current_context(silent=True)
    node_port_range = DEFAULT_NODE_PORT_RANGE
    if ctx is not None:
        node_port_range = ctx.meta.get(_RANGE_KEY, DEFAULT_NODE_PORT_RANGE)

    live = live_options_of(ctx)
    if live is not None:
        if example:
            raise click.UsageError("give either --example or a cluster to read (--kubeconfig, "
                                   "--context), not both")
        return _with_kp_version(_load_live(live, filenames, node_port_range, ctx), ctx)
    if filenames and example:
        raise click.UsageError("give either -f/--filename or --example, not both")
    if not filenames and not example:
        raise click.UsageError(
            "no cluster given: use -f PATH (a file, a directory or - for stdin), "
            "--example NAME (see `sourceip examples`), or read one with --kubeconfig FILE / "
            "--context NAME")
    if example:
        return _with_kp_version(load_example(example, node_port_range=node_port_range), ctx)
    if list(filenames).count("-") > 1:
        raise click.UsageError("stdin (-f -) can be given only once")
    # stdin is read by the loader (as bytes, so that binary input is a located error)
    with _loading(filenames, ctx):
        cluster = load_cluster(list(filenames), node_port_range=node_port_range)
    _require_objects(cluster, filenames)
    cluster = _with_kp_version(cluster, ctx)
    # The snapshot lives until the command ends: keep the garbage collector from rescanning
    # its (possibly millions of) objects on every collection.
    gc.collect()
    gc.freeze()
    return cluster


def _with_kp_version(cluster: Cluster, ctx: click.Context | None) -> Cluster:
    """``--kube-proxy-version`` applied to the cluster's KubeProxyConfig, as ``--mode`` is."""
    version = ctx.meta.get(_KP_VERSION_KEY) if ctx is not None else None
    if not version:
        return cluster
    from dataclasses import replace

    return cluster.with_(kube_proxy=replace(cluster.kube_proxy, version=version))


def _loading(filenames: Sequence[str], ctx: click.Context | None) -> Any:
    """A progress bar (stderr, a terminal only, after a second) while the input loads; none
    for ``-o json|yaml``."""
    import os

    from sourceip.report.term import progress

    size = 0
    for f in filenames:
        try:
            size += os.path.getsize(f) if f != "-" and os.path.isfile(f) else 0
        except OSError:
            pass
    what = ", ".join("<stdin>" if f == "-" else f for f in filenames[:3])
    if len(filenames) > 3:
        what += f" and {len(filenames) - 3} more"
    if size:
        what += f" ({size / 2**20:.0f} MiB)"
    output = ctx.params.get("output") if ctx is not None else None
    return progress(f"loading {what}", enabled=output not in ("json", "yaml"))


WHAT_TO_FEED = "kubectl get nodes,pods,svc,endpointslices -A -o yaml | sourceip explain -f -"


def _require_objects(cluster: Cluster, filenames: Sequence[str]) -> None:
    """Refuse input in which nothing was read: an empty stdin, /dev/null, or only kinds that
    do not change a packet's path would otherwise answer with an empty (successful) report."""
    from sourceip.errors import InputError

    if cluster.nodes or cluster.pods or cluster.services or cluster.endpoint_slices:
        return
    where = ", ".join("<stdin>" if f == "-" else f for f in filenames)
    if cluster.skipped:
        kinds = ", ".join(f"{k} ({n})" for k, n in list(cluster.skipped.items())[:6])
        found = f"only kinds sourceip does not read: {kinds}"
    else:
        found = "no Kubernetes objects"
    raise InputError(f"{found}; give Nodes, Pods, Services and EndpointSlices, e.g. "
                     f"`{WHAT_TO_FEED}`", file=where)


def missing_inputs(cluster: Cluster, svc: Service) -> list[str]:
    """What the input lacks for ``svc`` to have paths worth reading (empty: nothing)."""
    missing = []
    if not cluster.nodes:
        missing.append("no Nodes were given, so no path can be traced "
                       "(kubectl get nodes -o yaml)")
    if svc.proxied and not any(es.endpoints for es in cluster.slices_for(svc)):
        if svc.selector:
            sel = ",".join(f"{k}={v}" for k, v in svc.selector.items())
            missing.append(f"no endpoints: no given Pod matches its selector {sel} and no "
                           "EndpointSlice names it (kubectl get pods,endpointslices -n "
                           f"{svc.namespace} -o yaml)")
        else:
            missing.append("no endpoints: it has no selector and no EndpointSlice names it "
                           f"(kubectl get endpointslices -n {svc.namespace} -o yaml)")
    return missing


def output_option(
    choices: Sequence[str] = ("text", "json", "yaml", "wide"), default: str | None = None
) -> Callable[[F], F]:
    """``-o/--output FORMAT`` (the function receives ``output``); the default is the first
    choice."""
    def deco(f: F) -> F:
        return click.option(
            "-o", "--output", "output", type=click.Choice(list(choices)),
            default=default or choices[0], show_default=True,
            help="Output format.")(f)

    return deco


def to_yaml(data: Any) -> str:
    """YAML with keys in insertion order (the same order as the JSON)."""
    import yaml

    dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    text: str = yaml.dump(data, Dumper=dumper, sort_keys=False, default_flow_style=False,
                          allow_unicode=True)
    return text


def emit(data: Any, fmt: str) -> None:
    """Write ``data`` as JSON (insertion order, indent 2) or YAML; a ``str`` is written as is
    for ``text``/``wide``."""
    if fmt == "json":
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    elif fmt == "yaml":
        click.echo(to_yaml(data), nl=False)
    elif isinstance(data, str):
        click.echo(data, nl=not data.endswith("\n"))
    else:
        raise ValueError(f"emit: format {fmt!r} needs text rendered by the command")


# ------------------------------------------------------------- a live cluster (kubectl's flags)

_LIVE_KEY = "sourceip.live"
# `kubectl sourceip ...` (the kubectl-sourceip script) reads kubectl's current context when
# neither -f nor --example is given, as every kubectl command does
LIVE_BY_DEFAULT = False


def _store_live(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    if value is None or value is False:
        return
    if param.name == "request_timeout":
        try:
            value = parse_duration(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
    ctx.meta.setdefault(_LIVE_KEY, {})[param.name] = value


def parse_duration(text: str) -> float:
    """kubectl's ``--request-timeout`` value: ``0`` (none), a number of seconds, or a Go
    duration such as ``30s``, ``1m30s``, ``500ms``; ``ValueError`` otherwise."""
    import re

    t = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", t):
        return float(t)
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", t)
    if not parts or "".join(n + u for n, u in parts) != t:
        raise ValueError(f"{text!r} is not a duration (e.g. 30s, 1m, 0 for none)")
    return sum(float(n) * units[u] for n, u in parts)


def _has_param(f: Any, name: str) -> bool:
    return any(getattr(p, "name", None) == name for p in getattr(f, "__click_params__", ()))


def live_options(f: F) -> F:
    """kubectl's flags for reading a live cluster: ``--kubeconfig``, ``--context``,
    ``-n/--namespace``, ``-A/--all-namespaces``, ``--request-timeout`` (values travel in the
    click context; a command that already has ``-n``/``-A`` of its own, as explain, keeps them
    and they scope the reading too)."""
    f = click.option(
        "--request-timeout", "request_timeout", metavar="DURATION", default=None,
        expose_value=False, callback=_store_live,
        help="How long to wait for each answer of the API server (kubectl's format: 30s, "
             "1m, 0 for no limit; default 30s).")(f)
    if not _has_param(f, "all_ns"):
        f = click.option(
            "-A", "--all-namespaces", "all_ns", is_flag=True, default=False,
            expose_value=False, callback=_store_live,
            help="Read every namespace (the default).")(f)
    if not _has_param(f, "namespace"):
        f = click.option(
            "-n", "--namespace", "namespace", metavar="NS", default=None,
            expose_value=False, callback=_store_live,
            help="Read this namespace only (with --kubeconfig/--context; Nodes and other "
                 "cluster-wide kinds are read whole).")(f)
    f = click.option(
        "--context", "context", metavar="NAME", default=None, expose_value=False,
        callback=_store_live,
        help="Read the cluster of this kubeconfig context (default: the current context).")(f)
    f = click.option(
        "--kubeconfig", "kubeconfig", metavar="FILE", default=None, expose_value=False,
        callback=_store_live,
        help="Read the cluster of this kubeconfig (default: $KUBECONFIG, ~/.kube/config, or "
             "the pod's service account). Needs the kubernetes client: "
             "pip install 'sourceip[live]'.")(f)
    return f


def live_options_of(ctx: click.Context | None, *, force: bool = False) -> Any:
    """The ``LiveOptions`` the command line asks for (``--kubeconfig`` or ``--context`` given,
    or ``kubectl sourceip`` without ``-f``/``--example``), else None."""
    if ctx is None:
        return None
    given: dict[str, Any] = dict(ctx.meta.get(_LIVE_KEY, {}))
    wants = force or "kubeconfig" in given or "context" in given or (
        LIVE_BY_DEFAULT and not ctx.params.get("filenames") and not ctx.params.get("example"))
    if not wants:
        return None
    from sourceip.sources.live import DEFAULT_TIMEOUT, LiveOptions

    namespace = given.get("namespace") or ctx.params.get("namespace")
    if given.get("all_ns") or ctx.params.get("all_ns"):
        namespace = None  # -A wins over -n, as in kubectl
    timeout = given.get("request_timeout")
    return LiveOptions(kubeconfig=given.get("kubeconfig"), context=given.get("context"),
                       namespace=namespace,
                       request_timeout=DEFAULT_TIMEOUT if timeout is None else timeout)


def controller_hints() -> list[Any]:
    """How the live reader recognises ingress controller pods and their ConfigMaps: the rows
    of ``sourceip.ingress.discover.KNOWN`` (one table for both)."""
    from sourceip.ingress.discover import KNOWN
    from sourceip.sources.live import ControllerHint

    return [ControllerHint(images=k.images, entrypoints=k.entrypoints,
                           configmap_flag=k.configmap_flag,
                           default_configmaps=k.default_configmaps) for k in KNOWN]


def reading_progress(ctx: click.Context | None, what: str) -> Any:
    """A progress bar for reading a cluster and a callback ``(plural, count)`` advancing it."""
    from sourceip.report.term import progress

    output = ctx.params.get("output") if ctx is not None else None
    return progress(f"reading {what}", enabled=output not in ("json", "yaml"))


def _load_live(live: Any, filenames: Sequence[str], node_port_range: Any,
               ctx: click.Context | None) -> Cluster:
    """The cluster read through the kubernetes client (``-f`` files are added to it)."""
    from sourceip.errors import InputError
    from sourceip.sources.live import load_live
    from sourceip.sources.manifests import read_inputs

    extra = list(read_inputs(list(filenames))) if filenames else []
    where = f"context {live.context}" if live.context else "the cluster"
    with reading_progress(ctx, where) as bar:
        def step(plural: str, count: int) -> None:
            bar.update(f"reading {where}: {count:,} {plural}")

        cluster, read = load_live(live, controllers=controller_hints(), extra=extra,
                                  node_port_range=node_port_range, progress=step)
    if not (cluster.nodes or cluster.pods or cluster.services or cluster.endpoint_slices):
        scope = f"namespace {live.namespace}" if live.namespace else "any namespace"
        raise InputError(f"no Nodes, Pods, Services or EndpointSlices in {scope}", file=read.source)
    gc.collect()
    gc.freeze()
    return cluster
