"""The FastAPI / Starlette example of docs/clientip.md, run in-process with TestClient.

(No ``from __future__ import annotations`` here: FastAPI reads the ``Request`` annotation.)
"""

from typing import Any

import pytest

fastapi = pytest.importorskip("fastapi", reason="FastAPI example needs fastapi (dev extra)")
pytest.importorskip("httpx", reason="Starlette's TestClient needs httpx (dev extra)")

from fastapi import FastAPI, Request  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

# --- docs/clientip.md: FastAPI / Starlette ---
from sourceip.clientip import (  # noqa: E402
    Chain,
    ClientIPASGIMiddleware,
    RemoteAddress,
    RightmostTrustedRange,
)

app = FastAPI()
strategy = Chain(RightmostTrustedRange(trusted_proxies=["10.0.0.0/8"]), RemoteAddress())
app.add_middleware(ClientIPASGIMiddleware, strategy=strategy)


@app.get("/")
def index(request: Request) -> dict[str, Any]:
    client = request.state.sourceip_client
    return {"ip": client.ip, "code": client.code, "peer": request.client.host}
# --- end ---


def test_fastapi_example_resolves_behind_a_trusted_proxy() -> None:
    tc = TestClient(app, client=("10.0.0.3", 1234))
    r = tc.get("/", headers={"X-Forwarded-For": "203.0.113.5, 10.2.2.2"})
    assert r.json() == {"ip": "203.0.113.5", "code": "rightmost-untrusted", "peer": "10.0.0.3"}


def test_fastapi_example_ignores_headers_from_an_untrusted_peer() -> None:
    outsider = TestClient(app, client=("198.51.100.1", 1234))
    r = outsider.get("/", headers={"X-Forwarded-For": "1.1.1.1"})
    assert r.json()["ip"] == "198.51.100.1" and r.json()["code"] == "untrusted-peer"


def test_starlette_websocket_scope_is_resolved_too() -> None:
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json({"ip": websocket.state.sourceip_client.ip})
        await websocket.close()

    sapp = Starlette(routes=[WebSocketRoute("/ws", ws)])
    sapp.add_middleware(ClientIPASGIMiddleware, strategy=strategy)
    with TestClient(sapp, client=("10.0.0.3", 1)).websocket_connect(
            "/ws", headers={"X-Forwarded-For": "203.0.113.77"}) as conn:
        assert conn.receive_json() == {"ip": "203.0.113.77"}
