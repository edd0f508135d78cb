"""A Kubernetes API server stand-in on 127.0.0.1 for the live reader's tests and benchmark.

It answers as kube-apiserver does, for the requests sourceip makes:

* ``GET /api/v1/{plural}``, ``/api/v1/namespaces/{ns}/{plural}``, ``/apis/{group}/{version}/
  [namespaces/{ns}/]{plural}``: a ``*List`` (``apiVersion``, ``kind``, ``metadata.
  resourceVersion``; items without ``kind``/``apiVersion`` for built-in kinds, with them for
  custom resources, as the API server's typed and unstructured lists differ), paged by ``limit``
  with an opaque ``continue`` token (base64 JSON of the resourceVersion and the next key, like
  the server's) and ``remainingItemCount``; a token it did not issue is 400, an expired one 410;
* ``GET /api/v1/namespaces/{ns}/configmaps/{name}``: one object, or 404 ``Status``;
* errors as ``Status`` objects (401 Unauthorized, 403 Forbidden naming the user, resource and
  scope, 404 NotFound); an API group that is not served (a CRD not installed) is
  ``404 page not found`` in plain text, as the server's mux answers;
* ``slow``: a resource answered after a delay (to time out the client).

Objects are given as ``kubectl get -o json`` items (with kind/apiVersion); the server fills in
``metadata.namespace`` (default), ``uid``, ``resourceVersion`` and ``creationTimestamp`` as
the API server would have. A ``KubeProxyConfiguration`` among them is stored as kubeadm does, in
ConfigMap ``kube-system/kube-proxy`` (``config.conf``); sourceip's own kinds are not served.
Every request is logged (method, path, query) so tests can check what was asked.
"""

from __future__ import annotations

import base64
import bisect
import json
import threading
import time
import uuid
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

try:
    import orjson

    def _dumps(v: Any) -> bytes:
        return orjson.dumps(v)
except ImportError:  # pragma: no cover
    def _dumps(v: Any) -> bytes:
        return json.dumps(v, separators=(",", ":")).encode()

# kind -> (group, version, plural, namespaced)
RESOURCES: dict[str, tuple[str, str, str, bool]] = {
    "Node": ("", "v1", "nodes", False),
    "Pod": ("", "v1", "pods", True),
    "Service": ("", "v1", "services", True),
    "ConfigMap": ("", "v1", "configmaps", True),
    "EndpointSlice": ("discovery.k8s.io", "v1", "endpointslices", True),
    "Ingress": ("networking.k8s.io", "v1", "ingresses", True),
    "IngressClass": ("networking.k8s.io", "v1", "ingressclasses", False),
    "ServiceCIDR": ("networking.k8s.io", "v1", "servicecidrs", False),
    "DaemonSet": ("apps", "v1", "daemonsets", True),
    "GatewayClass": ("gateway.networking.k8s.io", "v1", "gatewayclasses", False),
    "Gateway": ("gateway.networking.k8s.io", "v1", "gateways", True),
    "HTTPRoute": ("gateway.networking.k8s.io", "v1", "httproutes", True),
    "ClientTrafficPolicy": ("gateway.envoyproxy.io", "v1alpha1", "clienttrafficpolicies", True),
}
BUILTIN_GROUPS = {"", "apps", "discovery.k8s.io", "networking.k8s.io"}
CRD_GROUPS = {"gateway.networking.k8s.io", "gateway.envoyproxy.io"}


def _status(code: int, reason: str, message: str, details: dict[str, Any] | None = None
            ) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {},
                           "status": "Failure", "message": message, "reason": reason,
                           "code": code}
    if details:
        out["details"] = details
    return out


class FakeAPIServer:
    """``with FakeAPIServer(objects) as srv: srv.url ...``; options change how it answers."""

    def __init__(self, objects: Iterable[dict[str, Any]], *, token: str = "s3cret",
                 user: str = "system:serviceaccount:default:sourceip",
                 forbidden: Iterable[str] = (), absent_groups: Iterable[str] = (),
                 absent_resources: Iterable[str] = (), slow: dict[str, float] | None = None,
                 max_page: int | None = None, expire_once: Iterable[str] = (),
                 copy: bool = True, tls: tuple[str, str] | None = None) -> None:
        self.token = token
        self.tls = tls  # (certificate file, key file): serve HTTPS, as a real API server does
        self.user = user
        self.forbidden = set(forbidden)  # plurals (or "configmaps/ns/name")
        self.absent_groups = set(absent_groups)
        self.absent_resources = set(absent_resources)  # "group/version/plural"
        self.slow = dict(slow or {})
        self.max_page = max_page
        self.expire_once = set(expire_once)  # plurals whose first continue token expires
        self.log: list[tuple[str, str, dict[str, list[str]]]] = []
        self._lock = threading.Lock()
        self.rv = 1000
        # (group, plural) -> sorted [(key, obj)], key = "ns/name" (etcd order)
        self.store: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = {}
        self._copy = copy
        self._add(objects)
        self.keys = {k: [key for key, _ in v] for k, v in self.store.items()}
        self.httpd: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    # ---- objects ----
    def _add(self, objects: Iterable[dict[str, Any]]) -> None:
        buckets: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = {}
        for obj in objects:
            kind = obj.get("kind")
            if kind == "KubeProxyConfiguration":
                import yaml

                obj = {"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": "kube-proxy", "namespace": "kube-system"},
                       "data": {"config.conf": yaml.safe_dump(obj)}}
                kind = "ConfigMap"
            if kind not in RESOURCES:
                continue  # sourceip's own kinds, workloads the API would hold elsewhere
            group, _version, plural, namespaced = RESOURCES[kind]
            if self._copy:
                obj = json.loads(json.dumps(obj))
            meta = obj.setdefault("metadata", {})
            if namespaced:
                meta.setdefault("namespace", "default")
            self.rv += 1
            meta.setdefault("uid", str(uuid.uuid5(uuid.NAMESPACE_URL,
                                                   f"{kind}/{meta.get('namespace')}/"
                                                   f"{meta.get('name')}")))
            meta.setdefault("resourceVersion", str(self.rv))
            meta.setdefault("creationTimestamp", "2025-01-01T00:00:00Z")
            key = f"{meta.get('namespace', '')}/{meta['name']}"
            buckets.setdefault((group, plural), []).append((key, obj))
        for k, items in buckets.items():
            self.store[k] = sorted(items, key=lambda kv: kv[0])

    # ---- lifecycle ----
    def __enter__(self) -> FakeAPIServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        server = self

        class Handler(_Handler):
            api = server

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        if self.tls is not None:
            import ssl

            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*self.tls)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    @property
    def port(self) -> int:
        assert self.httpd is not None
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def kubeconfig(self, path: str, *, context: str = "test", token: str | None = None) -> str:
        """Write a kubeconfig naming this server (context ``context``, a bearer token)."""
        import yaml

        doc = {"apiVersion": "v1", "kind": "Config", "current-context": context,
               "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
               "users": [{"name": "u", "user": {"token": token or self.token}}],
               "contexts": [{"name": context, "context": {"cluster": "fake", "user": "u"}}]}
        with open(path, "w") as f:
            yaml.safe_dump(doc, f)
        return path

    # ---- answering ----
    def answer(self, method: str, target: str, headers: Any) -> tuple[int, str, bytes]:
        parts = urlsplit(target)
        query = parse_qs(parts.query)
        with self._lock:
            self.log.append((method, parts.path, query))
        if method != "GET":
            return self._json(405, _status(405, "MethodNotAllowed", "read-only test server"))
        # the scheme is case-insensitive, as in the API server's bearer token authenticator
        # (staging/src/k8s.io/apiserver/pkg/authentication/request/bearertoken: ToLower);
        # the client's in-cluster loader sends "bearer"
        scheme, _, presented = str(headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or presented != self.token:
            return self._json(401, _status(401, "Unauthorized", "Unauthorized"))
        if parts.path == "/version":
            return self._json(200, {"major": "1", "minor": "33", "gitVersion": "v1.33.0"})
        segs = [s for s in parts.path.split("/") if s]
        if segs[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", segs[2:]
        elif segs[:1] == ["apis"] and len(segs) >= 3:
            group, version, rest = segs[1], segs[2], segs[3:]
        else:
            return 404, "text/plain", b"404 page not found\n"
        if group in self.absent_groups or (group not in BUILTIN_GROUPS | CRD_GROUPS):
            return 404, "text/plain", b"404 page not found\n"
        ns: str | None = None
        name: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            ns, rest = rest[1], rest[2:]
        if not rest:
            return 404, "text/plain", b"404 page not found\n"
        plural = rest[0]
        if len(rest) == 2:
            name = rest[1]
        known = {(g, v, p) for g, v, p, _ in RESOURCES.values()}
        known |= {("discovery.k8s.io", "v1beta1", "endpointslices"),
                  ("networking.k8s.io", "v1beta1", "servicecidrs"),
                  ("gateway.networking.k8s.io", "v1beta1", "gatewayclasses"),
                  ("gateway.networking.k8s.io", "v1beta1", "gateways"),
                  ("gateway.networking.k8s.io", "v1beta1", "httproutes")}
        if (group, version, plural) not in known or \
                f"{group}/{version}/{plural}" in self.absent_resources:
            return self._json(404, _status(404, "NotFound",
                                           "the server could not find the requested resource",
                                           {}))
        delay = self.slow.get(plural)
        if delay:
            time.sleep(delay)
        group_text = group
        if name is not None:
            if f"{plural}/{ns}/{name}" in self.forbidden or plural in self.forbidden:
                return self._json(403, _status(
                    403, "Forbidden", f'{plural} "{name}" is forbidden: User "{self.user}" '
                    f'cannot get resource "{plural}" in API group "{group_text}" in the '
                    f'namespace "{ns}"', {"name": name, "kind": plural}))
            for key, obj in self.store.get((group, plural), []):
                if key == f"{ns}/{name}":
                    return self._json(200, obj)
            return self._json(404, _status(404, "NotFound", f'{plural} "{name}" not found',
                                           {"name": name, "kind": plural}))
        if plural in self.forbidden:
            scope = f'in the namespace "{ns}"' if ns else "at the cluster scope"
            return self._json(403, _status(
                403, "Forbidden", f'{plural} is forbidden: User "{self.user}" cannot list '
                f'resource "{plural}" in API group "{group_text}" {scope}', {"kind": plural}))
        return self._list(group, version, plural, ns, query)

    def _list(self, group: str, version: str, plural: str, ns: str | None,
              query: dict[str, list[str]]) -> tuple[int, str, bytes]:
        items = self.store.get((group, plural), [])
        keys = self.keys.get((group, plural), [])
        if ns is not None:
            items = [kv for kv in items if kv[0].startswith(ns + "/")]
            keys = [k for k, _ in items]
        start = ""
        rv = str(self.rv)
        token = (query.get("continue") or [""])[0]
        if token:
            try:
                doc = json.loads(base64.urlsafe_b64decode(token.encode()))
                start, rv = doc["start"], doc["rv"]
            except (ValueError, KeyError):
                return self._json(400, _status(400, "BadRequest", "continue key is not valid"))
            if plural in self.expire_once:
                self.expire_once.discard(plural)
                return self._json(410, _status(
                    410, "Expired", "The provided continue parameter is too old to display a "
                    "consistent list result. You can start a new list without the continue "
                    "parameter."))
        limit = int((query.get("limit") or ["0"])[0] or 0)
        if self.max_page:
            limit = min(limit or self.max_page, self.max_page)
        lo = 0
        if start:
            lo = bisect.bisect_left(keys, start)
        hi = len(items) if not limit else min(len(items), lo + limit)
        page = [obj for _, obj in items[lo:hi]]
        custom = group in CRD_GROUPS
        kind = next(k for k, r in RESOURCES.items() if r[0] == group and r[2] == plural)
        api = f"{group}/{version}" if group else version
        if not custom:  # typed lists carry no TypeMeta per item
            page = [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")}
                    for o in page]
        else:
            page = [{**o, "apiVersion": api} for o in page]
        meta: dict[str, Any] = {"resourceVersion": rv}
        if hi < len(items):
            meta["continue"] = base64.urlsafe_b64encode(json.dumps(
                {"v": "meta.k8s.io/v1", "rv": rv, "start": items[hi][0]}).encode()).decode()
            meta["remainingItemCount"] = len(items) - hi
        return self._json(200, {"kind": f"{kind}List", "apiVersion": api, "metadata": meta,
                                "items": page})

    @staticmethod
    def _json(code: int, body: Any) -> tuple[int, str, bytes]:
        return code, "application/json", _dumps(body)

    def requests(self, path_part: str = "") -> list[tuple[str, str, dict[str, list[str]]]]:
        return [r for r in self.log if path_part in r[1]]


class _Handler(BaseHTTPRequestHandler):
    api: FakeAPIServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self._reply(*self.api.answer("GET", self.path, self.headers))

    def do_POST(self) -> None:  # noqa: N802
        self._reply(*self.api.answer("POST", self.path, self.headers))

    def _reply(self, code: int, ctype: str, body: bytes) -> None:
        try:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Audit-Id", str(uuid.uuid4()))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass
