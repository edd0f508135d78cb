"""WSGI/ASGI middleware, and the Flask, Django and FastAPI/Starlette examples of
docs/clientip.md run in-process."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sourceip.clientip import (
    Chain,
    ClientIP,
    ClientIPASGIMiddleware,
    ClientIPMiddleware,
    ConfigError,
    RemoteAddress,
    RightmostTrustedRange,
    TrustedForwardedInfo,
)

PROXIES = ["10.0.0.0/8", "127.0.0.0/8"]
STRATEGY = Chain(RightmostTrustedRange(trusted_proxies=PROXIES), RemoteAddress())


# --- plain WSGI / ASGI ------------------------------------------------------------------------


def _wsgi_call(mw: ClientIPMiddleware, environ: dict[str, Any]) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def app(env: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.update(env)
        start_response("200 OK", [])
        return [b""]

    mw.app = app
    mw(environ, lambda *a: None)
    return seen


def test_wsgi_keeps_peer_and_rewrites_only_when_asked() -> None:
    env = {"REMOTE_ADDR": "10.0.0.9", "HTTP_X_FORWARDED_FOR": "203.0.113.5, 10.1.1.1",
           "wsgi.url_scheme": "http", "HTTP_HOST": "internal:8080", "SERVER_PORT": "8080",
           "HTTP_X_FORWARDED_PROTO": "https", "HTTP_X_FORWARDED_HOST": "app.example"}
    plain = _wsgi_call(ClientIPMiddleware(lambda e, s: [], STRATEGY), dict(env))
    result: ClientIP = plain["sourceip.client"]
    assert (result.ip, result.code, plain["REMOTE_ADDR"]) == ("203.0.113.5",
                                                             "rightmost-untrusted", "10.0.0.9")
    assert plain["sourceip.peer"] == "10.0.0.9"
    info = TrustedForwardedInfo(trusted_proxies=PROXIES, proto=True, host=True)
    rewritten = _wsgi_call(ClientIPMiddleware(lambda e, s: [], STRATEGY, forwarded_info=info,
                                              rewrite_remote_addr=True,
                                              rewrite_forwarded=True), dict(env))
    assert rewritten["REMOTE_ADDR"] == "203.0.113.5"
    assert rewritten["wsgi.url_scheme"] == "https" and rewritten["HTTP_HOST"] == "app.example"
    assert rewritten["sourceip.orig"]["REMOTE_ADDR"] == "10.0.0.9"
    assert rewritten["sourceip.orig"]["wsgi.url_scheme"] == "http"


def test_wsgi_untrusted_peer_cannot_spoof() -> None:
    env = {"REMOTE_ADDR": "198.51.100.7", "HTTP_X_FORWARDED_FOR": "1.1.1.1"}
    seen = _wsgi_call(ClientIPMiddleware(lambda e, s: [], STRATEGY, rewrite_remote_addr=True),
                      env)
    assert seen["REMOTE_ADDR"] == "198.51.100.7"
    assert seen["sourceip.client"].code == "untrusted-peer"


def test_middleware_configuration_errors() -> None:
    with pytest.raises(ConfigError):
        ClientIPMiddleware(lambda e, s: [], STRATEGY, rewrite_forwarded=True)
    with pytest.raises(ConfigError):
        ClientIPASGIMiddleware(None, STRATEGY)  # type: ignore[arg-type]


def test_asgi_reads_every_header_line_and_passes_other_scopes() -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(dict(scope))

    mw = ClientIPASGIMiddleware(app, STRATEGY, rewrite_client=True)
    scope = {"type": "http", "client": ("10.0.0.9", 5555), "headers": [
        (b"x-forwarded-for", b"6.6.6.6"), (b"host", b"x"),
        (b"x-forwarded-for", b"203.0.113.5, 10.1.1.1")]}
    asyncio.run(mw(scope, None, None))  # type: ignore[arg-type]
    assert seen[0]["client"] == ("203.0.113.5", 0)
    assert seen[0]["sourceip.peer"] == ("10.0.0.9", 5555)
    assert seen[0]["state"]["sourceip_client"].hop == 1
    asyncio.run(mw({"type": "lifespan"}, None, None))  # type: ignore[arg-type]
    assert "sourceip.client" not in seen[1]


@pytest.mark.parametrize(("scheme", "host", "fwd_port", "expected_host"), [
    ("http", "internal:8080", "8443", "internal:8443"),  # the stale :8080 is replaced
    ("https", "internal:8080", "443", "internal"),       # the scheme's default: no port
    ("http", "internal", "8443", "internal:8443"),
    ("http", "[fd00::1]:8080", "9000", "[fd00::1]:9000"),
    ("http", "[fd00::1]", "9000", "[fd00::1]:9000"),
])
def test_wsgi_trusted_port_rewrites_the_port_in_http_host_too(
        scheme: str, host: str, fwd_port: str, expected_host: str) -> None:
    env = {"REMOTE_ADDR": "10.0.0.9", "wsgi.url_scheme": scheme, "HTTP_HOST": host,
           "SERVER_NAME": "internal", "SERVER_PORT": "8080", "HTTP_X_FORWARDED_PORT": fwd_port}
    info = TrustedForwardedInfo(trusted_proxies=PROXIES, port=True)
    seen = _wsgi_call(ClientIPMiddleware(lambda e, s: [], STRATEGY, forwarded_info=info,
                                         rewrite_forwarded=True), env)
    assert seen["SERVER_PORT"] == fwd_port
    assert seen["HTTP_HOST"] == expected_host
    assert seen["sourceip.orig"]["HTTP_HOST"] == host
    assert seen["sourceip.orig"]["SERVER_PORT"] == "8080"


def test_wsgi_host_and_port_from_the_proxy_agree() -> None:
    env = {"REMOTE_ADDR": "10.0.0.9", "wsgi.url_scheme": "http", "HTTP_HOST": "internal:8080",
           "SERVER_NAME": "internal", "SERVER_PORT": "8080",
           "HTTP_X_FORWARDED_HOST": "app.example", "HTTP_X_FORWARDED_PORT": "8443"}
    info = TrustedForwardedInfo(trusted_proxies=PROXIES, host=True, port=True)
    seen = _wsgi_call(ClientIPMiddleware(lambda e, s: [], STRATEGY, forwarded_info=info,
                                         rewrite_forwarded=True), env)
    assert (seen["HTTP_HOST"], seen["SERVER_NAME"], seen["SERVER_PORT"]) == (
        "app.example:8443", "app.example", "8443")
    assert seen["sourceip.orig"]["HTTP_HOST"] == "internal:8080"


def test_asgi_rewrite_client_keeps_the_peer_port_when_the_answer_is_the_peer() -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(dict(scope))

    mw = ClientIPASGIMiddleware(app, STRATEGY, rewrite_client=True)
    # an untrusted peer: its header is ignored, the answer is the peer itself
    asyncio.run(mw({"type": "http", "client": ("198.51.100.7", 41000),  # type: ignore[arg-type]
                    "headers": [(b"x-forwarded-for", b"1.1.1.1")]}, None, None))
    # a trusted peer without the header: the answer is the peer too
    asyncio.run(mw({"type": "http", "client": ("10.0.0.9", 5555),  # type: ignore[arg-type]
                    "headers": []}, None, None))
    assert seen[0]["client"] == ("198.51.100.7", 41000)
    assert seen[0]["sourceip.client"].from_peer
    assert seen[1]["client"] == ("10.0.0.9", 5555)


# --- framework examples (the same code as docs/clientip.md) -----------------------------------


def test_flask_example() -> None:
    flask = pytest.importorskip("flask", reason="Flask example needs flask (dev extra)")

    # --- docs/clientip.md: Flask ---
    from sourceip.clientip import (
        Chain,
        ClientIPMiddleware,
        RemoteAddress,
        RightmostTrustedRange,
    )

    app = flask.Flask(__name__)
    strategy = Chain(RightmostTrustedRange(trusted_proxies=["10.0.0.0/8"]), RemoteAddress())
    app.wsgi_app = ClientIPMiddleware(app.wsgi_app, strategy)  # type: ignore[method-assign]

    @app.get("/")
    def index() -> dict[str, Any]:
        client = flask.request.environ["sourceip.client"]
        return {"ip": client.ip, "why": client.reason, "peer": flask.request.remote_addr}
    # --- end ---

    c = app.test_client()
    r = c.get("/", headers={"X-Forwarded-For": "203.0.113.5, 10.2.2.2"},
              environ_base={"REMOTE_ADDR": "10.0.0.3"})
    assert r.json["ip"] == "203.0.113.5" and r.json["peer"] == "10.0.0.3"
    r = c.get("/", headers={"X-Forwarded-For": "203.0.113.5"},
              environ_base={"REMOTE_ADDR": "198.51.100.1"})
    assert r.json["ip"] == "198.51.100.1"


def test_django_example() -> None:
    pytest.importorskip("django", reason="Django example needs django (dev extra)")
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            DEBUG=False, SECRET_KEY="test", ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__,
            MIDDLEWARE=[], INSTALLED_APPS=[], DATABASES={},
        )
        django.setup()

    # --- docs/clientip.md: Django (wsgi.py) ---
    from django.core.wsgi import get_wsgi_application

    from sourceip.clientip import (
        Chain,
        ClientIPMiddleware,
        RemoteAddress,
        RightmostTrustedRange,
    )

    strategy = Chain(RightmostTrustedRange(trusted_proxies=["10.0.0.0/8"]), RemoteAddress())
    application = ClientIPMiddleware(get_wsgi_application(), strategy, rewrite_remote_addr=True)
    # in a view: request.META["sourceip.client"].ip, request.META["REMOTE_ADDR"]
    # --- end ---

    from django.test import Client

    client = Client(REMOTE_ADDR="10.0.0.3")
    client.handler = _WrappedHandler(application, client.handler)  # route through middleware
    r = client.get("/ip", HTTP_X_FORWARDED_FOR="203.0.113.5, 10.9.9.9")
    assert r.json() == {"ip": "203.0.113.5", "remote_addr": "203.0.113.5",
                        "peer": "10.0.0.3", "code": "rightmost-untrusted"}


class _WrappedHandler:
    """Django's test Client calls its handler with an environ; send it through our WSGI app."""

    def __init__(self, wsgi: ClientIPMiddleware, inner: Any) -> None:
        self.wsgi = wsgi
        self.inner = inner

    def __call__(self, environ: dict[str, Any]) -> Any:
        captured: dict[str, Any] = {}

        def fake_app(env: dict[str, Any], start_response: Any) -> list[bytes]:
            captured["response"] = self.inner(env)
            return []

        saved = self.wsgi.app
        self.wsgi.app = fake_app
        try:
            self.wsgi(environ, lambda *a: None)
        finally:
            self.wsgi.app = saved
        return captured["response"]


def ip_view(request: Any) -> Any:
    from django.http import JsonResponse

    c = request.META["sourceip.client"]
    return JsonResponse({"ip": c.ip, "remote_addr": request.META["REMOTE_ADDR"],
                         "peer": request.META["sourceip.peer"], "code": c.code})


def _urlpatterns() -> list[Any]:
    try:
        from django.urls import path
    except ImportError:  # pragma: no cover
        return []
    return [path("ip", ip_view)]


urlpatterns = _urlpatterns()
