"""sourceip.ingress: one request through one ingress controller, computed.

Given a controller's configuration (read as the controller reads it), the connection it
receives (peer from the L4 path, an optional PROXY header) and the incoming headers,
:func:`forward` says what the backend pod receives and which setting produced each header;
:func:`recommend` says which :mod:`sourceip.clientip` strategy the app behind it should use,
whether a client can forge the result, and which settings fix it.

One module per controller, each the single place for that product's semantics, pinned to the
upstream release it was read from:

* :mod:`.nginx` -- ingress-nginx (ConfigMap; realip, ``$full_x_forwarded_for``); also
  :func:`render_nginx_conf` for a real nginx.
* :mod:`.traefik` -- Traefik entryPoints ``forwardedHeaders`` / ``proxyProtocol``.
* :mod:`.envoy` -- Envoy's HTTP connection manager and Envoy Gateway's ClientTrafficPolicy.
* :mod:`.haproxy` -- haproxytech kubernetes-ingress (``forwarded-for``, ``proxy-protocol``);
  also :func:`render_haproxy_cfg`.
* :mod:`.model` -- the shared values (:class:`Connection`, :class:`Forwarded`,
  :class:`Recommendation`, :class:`SettingChange`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sourceip.errors import ValidationError

from . import envoy, haproxy, nginx, traefik
from .envoy import EnvoySettings
from .haproxy import HAProxySettings, render_haproxy_cfg
from .model import Connection, Forwarded, Recommendation, SettingChange
from .nginx import NginxSettings, render_nginx_conf
from .traefik import TraefikSettings

Settings = NginxSettings | TraefikSettings | EnvoySettings | HAProxySettings

CONTROLLERS: tuple[str, ...] = ("ingress-nginx", "traefik", "envoy", "envoy-gateway", "haproxy")

__all__ = [
    "CONTROLLERS",
    "Connection",
    "EnvoySettings",
    "Forwarded",
    "HAProxySettings",
    "NginxSettings",
    "Recommendation",
    "SettingChange",
    "Settings",
    "TraefikSettings",
    "client_headers",
    "controller_of",
    "default_settings",
    "forward",
    "parse_settings",
    "recommend",
    "render_haproxy_cfg",
    "render_nginx_conf",
]

_PARSERS: dict[str, Callable[[Mapping[str, Any] | Sequence[str]], Any]] = {
    "ingress-nginx": nginx.parse_settings,
    "traefik": traefik.parse_settings,
    "envoy": envoy.parse_envoy,
    "envoy-gateway": envoy.parse_envoy_gateway,
    "haproxy": haproxy.parse_settings,
}


def _check(controller: str) -> None:
    if controller not in CONTROLLERS:
        raise ValidationError(f"{controller!r} is not one of {', '.join(CONTROLLERS)}",
                              field="controller")


def controller_of(settings: Settings) -> str:
    """The controller name a settings object belongs to."""
    return settings.controller


def parse_settings(controller: str, source: Mapping[str, Any] | Sequence[str], *,
                   form: str = "auto") -> Settings:
    """Read a controller's own configuration.

    ``ingress-nginx`` / ``haproxy``: the ConfigMap ``data``; ``traefik``: container args or
    the static configuration mapping; ``envoy``: an HttpConnectionManager mapping;
    ``envoy-gateway``: a ClientTrafficPolicy. ``form`` ("auto", "args", "mapping") only
    checks the shape. Bad values raise :class:`~sourceip.errors.ValidationError` whose
    ``field`` is the path inside ``source`` and whose message says what the controller does
    with the value.
    """
    _check(controller)
    if form not in ("auto", "args", "mapping"):
        raise ValidationError(f"{form!r} is not auto, args or mapping", field="form")
    if form == "args" and isinstance(source, Mapping):
        raise ValidationError("form 'args' needs a list of arguments", field="form")
    if form == "mapping" and not isinstance(source, Mapping):
        raise ValidationError("form 'mapping' needs a mapping", field="form")
    result: Settings = _PARSERS[controller](source)
    return result


def default_settings(controller: str) -> Settings:
    """The controller's behaviour with no configuration at all."""
    _check(controller)
    if controller == "ingress-nginx":
        return nginx.default_settings()
    if controller == "traefik":
        return traefik.default_settings()
    if controller == "haproxy":
        return haproxy.default_settings()
    return envoy.default_settings(controller)


def forward(settings: Settings, conn: Connection, headers: Sequence[tuple[str, str]], *,
            controller_ip: str, host: str = "example.test", scheme: str = "http",
            port: int = 80) -> Forwarded:
    """What the backend receives for one request (see :class:`Forwarded`)."""
    kw: dict[str, Any] = {"controller_ip": controller_ip, "host": host, "scheme": scheme,
                          "port": port}
    pairs = [(str(n), str(v)) for n, v in headers]
    if isinstance(settings, NginxSettings):
        return nginx.forward(settings, conn, pairs, **kw)
    if isinstance(settings, TraefikSettings):
        return traefik.forward(settings, conn, pairs, **kw)
    if isinstance(settings, HAProxySettings):
        return haproxy.forward(settings, conn, pairs, **kw)
    return envoy.forward(settings, conn, pairs, **kw)


def recommend(settings: Settings, *, trusted_cidrs: Sequence[str]) -> Recommendation:
    """The strategy the app behind this controller should use, given that only the controller
    pods (``trusted_cidrs``) connect to it."""
    cidrs = [str(c) for c in trusted_cidrs]
    if isinstance(settings, NginxSettings):
        return nginx.recommend(settings, trusted_cidrs=cidrs)
    if isinstance(settings, TraefikSettings):
        return traefik.recommend(settings, trusted_cidrs=cidrs)
    if isinstance(settings, HAProxySettings):
        return haproxy.recommend(settings, trusted_cidrs=cidrs)
    return envoy.recommend(settings, trusted_cidrs=cidrs)


def client_headers(settings: Settings) -> tuple[str, ...]:
    """Headers a client would forge to steer the controller's idea of the client."""
    if isinstance(settings, NginxSettings):
        return nginx.client_headers(settings)
    if isinstance(settings, TraefikSettings):
        return traefik.client_headers(settings)
    if isinstance(settings, HAProxySettings):
        return haproxy.client_headers(settings)
    return envoy.client_headers(settings)
