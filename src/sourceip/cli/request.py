"""``sourceip request``: one HTTP request through one ingress controller -- what the backend
receives and which setting made each header."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import click

from sourceip.cli.common import emit, output_option
from sourceip.errors import InputError, ManifestError, ValidationError

_CONTROLLERS = ("ingress-nginx", "traefik", "envoy", "envoy-gateway", "haproxy")


def _split_hostport(text: str, what: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.BadParameter(f"{text!r} is not IP:PORT", param_hint=what)
    return host, int(port)


def _headers(values: tuple[str, ...]) -> list[tuple[str, str]]:
    out = []
    for v in values:
        name, sep, value = v.partition(":")
        if not sep or not name.strip():
            raise click.BadParameter(f"{v!r} is not 'Name: value'", param_hint="-H")
        out.append((name.strip(), value.strip()))
    return out


def _load(controller: str, path: str) -> Any:
    """Read CONFIG in the controller's own format; returns the settings."""
    from sourceip.ingress import parse_settings
    from sourceip.sources.convert import RawObject
    from sourceip.sources.manifests import Source, parse_text

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestError(f"cannot read: {exc.strerror}", file=path) from None
    if path.endswith(".toml"):
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ManifestError(f"invalid TOML: {exc}", file=path) from None
        return parse_settings(controller, data)
    import yaml  # here, not at the top: `sourceip --help` imports this module

    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ManifestError(f"invalid YAML: {getattr(exc, 'problem', exc)}", file=path,
                            line=mark.line + 1 if mark is not None else None) from None
    kinds = [d.get("kind") for d in docs if isinstance(d, dict)]
    if any(kinds):
        objs: list[RawObject] = list(parse_text(text, path, path=p))
        for raw in objs:
            kind = raw.kind
            try:
                if controller in ("ingress-nginx", "haproxy") and kind == "ConfigMap":
                    return parse_settings(controller, raw.obj.get("data") or {})
                if controller == "envoy-gateway" and kind == "ClientTrafficPolicy":
                    return parse_settings(controller, raw.obj)
                if controller == "traefik" and kind in ("Deployment", "DaemonSet", "Pod"):
                    spec = raw.obj.get("spec", {})
                    pod = spec if kind == "Pod" else spec.get("template", {}).get("spec", {})
                    for i, c in enumerate(pod.get("containers") or []):
                        args = list(c.get("args") or []) + list(c.get("command") or [])
                        if any(str(a).lower().startswith("--entrypoints.") for a in args):
                            prefix = ("spec." if kind == "Pod" else "spec.template.spec.")
                            try:
                                return parse_settings(controller, [str(a) for a in args])
                            except ValidationError as exc:
                                exc.field = f"{prefix}containers[{i}].{exc.field}"
                                raise
            except ValidationError as exc:
                raise raw.locate(exc) from None
        raise ManifestError(f"no object for {controller} in this file (kinds: "
                            f"{', '.join(str(k) for k in kinds if k)})", file=path)
    data = docs[0] if docs else {}
    try:
        return parse_settings(controller, data)
    except ValidationError as exc:
        src = Source(path, path=p, text=text)
        from sourceip.sources.convert import parse_path

        try:
            line = src.line_of(0, parse_path(exc.field))
        except Exception:  # locating is best effort
            line = None
        exc.located(file=path, line=line)
        raise


def _render_text(controller: str, conn: Any, fwd: Any, rec: Any) -> str:
    lines = [f"controller: {controller}"]
    src = f"{conn.peer}:{conn.peer_port}"
    if conn.proxy is not None:
        src += f" (PROXY v{conn.proxy_version} source {conn.proxy[0]}:{conn.proxy[1]})"
    lines.append(f"connection from: {src}")
    if not fwd.ok:
        lines.append(f"REJECTED: {fwd.error}")
        return "\n".join(lines) + "\n"
    lines.append(f"controller's client: {fwd.controller_client}")
    lines.append(f"backend sees peer: {fwd.peer}")
    lines.append("headers the backend receives:")
    prov = dict(fwd.provenance)
    width = max((len(n) for n, _ in fwd.headers), default=0)
    for n, v in fwd.headers:
        lines.append(f"  {n.ljust(width)}: {v}")
        if n in prov:
            lines.append(f"  {' ' * width}  <- {prov[n]}")
    lines.append(f"app should use: {rec.strategy_code}")
    lines.append(f"forgeable by the client: {'YES' if rec.forgeable else 'no'}")
    for c in rec.settings_changes:
        lines.append(f"  change {c.setting}: {c.value} -- {c.effect} (cost: {c.cost})")
    for note in rec.notes:
        lines.append(f"  note: {note}")
    return "\n".join(lines) + "\n"


@click.command()
@click.option("--controller", required=True, type=click.Choice(list(_CONTROLLERS)),
              help="The ingress controller.")
@click.option("-f", "--filename", "filenames", metavar="CONFIG", multiple=True,
              help="The controller's own configuration: ingress-nginx / haproxytech ConfigMap, "
                   "Traefik static config (YAML/TOML) or a Deployment with --entryPoints args, "
                   "an Envoy HttpConnectionManager, an Envoy Gateway ClientTrafficPolicy. "
                   "Without it: the controller's defaults.")
@click.option("--peer", required=True, metavar="IP:PORT",
              help="The connection's source as the controller sees it.")
@click.option("--proxy-protocol", "proxy", metavar="SRC_IP:PORT", default=None,
              help="The connection carries a PROXY header with this source.")
@click.option("--proxy-version", type=click.Choice(["1", "2"]), default="2",
              show_default=True, help="PROXY protocol version.")
@click.option("-H", "--header", "headers", multiple=True, metavar="'Name: value'",
              help="An incoming request header (repeatable, order kept).")
@click.option("--controller-ip", default="10.244.0.10", show_default=True,
              help="The controller pod's address (the backend's peer).")
@click.option("--trusted-cidr", "trusted", multiple=True,
              help="CIDRs of the controller pods, for the app's strategy "
                   "(default: --controller-ip/32).")
@click.option("--host", default="example.test", show_default=True)
@click.option("--scheme", type=click.Choice(["http", "https"]), default="http",
              show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=80, show_default=True,
              help="The controller's listen port.")
@output_option(("text", "json", "yaml"))
def request(controller: str, filenames: tuple[str, ...], peer: str, proxy: str | None,
            proxy_version: str, headers: tuple[str, ...], controller_ip: str,
            trusted: tuple[str, ...], host: str, scheme: str, port: int, output: str) -> None:
    """One HTTP request through one ingress controller: the headers the backend receives, the
    setting that produced each, and the client-IP strategy the app should use."""
    from sourceip.ingress import Connection, default_settings, forward, recommend

    if len(filenames) > 1:
        raise click.UsageError("give one CONFIG file (-f) for the controller")
    settings = _load(controller, filenames[0]) if filenames else default_settings(controller)
    peer_ip, peer_port = _split_hostport(peer, "--peer")
    pp = _split_hostport(proxy, "--proxy-protocol") if proxy else None
    try:
        conn = Connection(peer=peer_ip, peer_port=peer_port, proxy=pp,
                          proxy_version=int(proxy_version))
    except ValidationError as exc:
        raise InputError(str(exc)) from None
    pairs = _headers(headers)
    fwd = forward(settings, conn, pairs, controller_ip=controller_ip, host=host, scheme=scheme,
                  port=port)
    cidrs = list(trusted) or [f"{controller_ip}/{32 if ':' not in controller_ip else 128}"]
    rec = recommend(settings, trusted_cidrs=cidrs)
    if output in ("json", "yaml"):
        data = fwd.to_dict()
        data["controller"] = controller
        data["recommendation"] = rec.to_dict()
        emit(data, output)
    else:
        emit(_render_text(controller, conn, fwd, rec), "text")
