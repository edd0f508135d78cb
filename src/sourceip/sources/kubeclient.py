"""The kubernetes client, isolated: the only module that imports it (lazily: it is an optional
dependency, ``pip install 'sourceip[live]'``, and untyped — what it returns is ``Any`` until it is
plain JSON here). Raw GET and paged LIST through ``ApiClient`` alone (the typed API classes
would import 250 pydantic models, 4.7 s), answers decoded as raw JSON (orjson when installed),
errors turned into ``LiveError`` (exit 1) or the reader's signals (403, 404, 410).

Used by ``sources/live.py``, which decides what to read.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sourceip.errors import InputError

Obj = dict[str, Any]
INSTALL_HINT = "pip install 'sourceip[live]'"
DEFAULT_PAGE_SIZE = 500  # kubectl get's --chunk-size
DEFAULT_TIMEOUT = 30.0
CONNECT_TIMEOUT = 10.0

_orjson: Any
try:
    import orjson as _orjson
except ImportError:  # optional: the `fast` extra
    _orjson = None


class LiveError(InputError):
    """The cluster cannot be read: no kubeconfig, an unknown context, the API server
    unreachable or refusing the credentials (exit 1, like any input that cannot be read)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveOptions:
    """Where and what to read (kubectl's flags)."""

    kubeconfig: str | None = None  # None: $KUBECONFIG, ~/.kube/config, else in-cluster
    context: str | None = None  # None: the kubeconfig's current-context
    namespace: str | None = None  # None: every namespace (-A)
    request_timeout: float = DEFAULT_TIMEOUT  # seconds per request; 0: none
    page_size: int = DEFAULT_PAGE_SIZE


@dataclass(frozen=True, slots=True)
class Resource:
    """One kind the reader lists, and what the answer lacks without it."""

    kind: str
    group: str  # "" for the core API
    versions: tuple[str, ...]  # tried in order: a 404 moves on to the next
    plural: str
    namespaced: bool
    crd: bool = False  # an absent API group is normal (a CRD that is not installed)
    lacks: str = ""  # what the answer lacks when it cannot be read

    @property
    def api(self) -> str:
        return f"{self.group}/" if self.group else ""



class Forbidden(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(Exception):
    pass


def _import_client() -> Any:
    try:
        return importlib.import_module("kubernetes")
    except ImportError:
        raise LiveError("reading a cluster needs the kubernetes client: "
                        f"{INSTALL_HINT}") from None


def _kubeconfig_files(opts: LiveOptions) -> str | None:
    """The kubeconfig to read as kubectl picks it: --kubeconfig, $KUBECONFIG (paths joined by
    ':'), ~/.kube/config; None when there is none (then: in-cluster, or an error)."""
    if opts.kubeconfig:
        path = os.path.expanduser(opts.kubeconfig)
        if not os.path.isfile(path):
            raise LiveError(f"no kubeconfig: {opts.kubeconfig} does not exist (--kubeconfig)")
        return path
    env = os.environ.get("KUBECONFIG", "")
    if env:
        paths = [os.path.expanduser(p) for p in env.split(os.pathsep) if p]
        existing = [p for p in paths if os.path.isfile(p)]
        if not existing:
            raise LiveError(f"no kubeconfig: $KUBECONFIG names {env!r}, which does not exist")
        return os.pathsep.join(existing)
    home = os.path.expanduser("~/.kube/config")
    return home if os.path.isfile(home) else None


class Transport:
    """Raw GET / paged LIST over the kubernetes client; errors become ``LiveError`` (401,
    unreachable), ``Forbidden`` (403) or ``NotFound`` (404)."""

    def __init__(self, opts: LiveOptions) -> None:
        _import_client()
        self.opts = opts
        cfg_mod = importlib.import_module("kubernetes.config")
        client_mod = importlib.import_module("kubernetes.client.api_client")
        configuration_mod = importlib.import_module("kubernetes.client.configuration")
        exc_mod = importlib.import_module("kubernetes.config.config_exception")
        self._api_exception: Any = importlib.import_module(
            "kubernetes.client.exceptions").ApiException
        configuration = configuration_mod.Configuration()
        files = _kubeconfig_files(opts)
        if files is None:
            if not os.environ.get("KUBERNETES_SERVICE_HOST"):
                raise LiveError("no kubeconfig: give --kubeconfig FILE, set $KUBECONFIG, or "
                                "create ~/.kube/config (in a pod, the service account is used)")
            if opts.context:
                raise LiveError(f"--context {opts.context}: there is no kubeconfig here (in a "
                                "pod, the service account is used)")
            try:
                cfg_mod.load_incluster_config(client_configuration=configuration)
            except exc_mod.ConfigException as exc:
                raise LiveError(f"in-cluster configuration: {exc}") from None
            self.context = "in-cluster"
        else:
            shown = opts.kubeconfig or files
            try:
                contexts, current = cfg_mod.list_kube_config_contexts(config_file=files)
            except exc_mod.ConfigException as exc:
                raise LiveError(f"kubeconfig {shown}: {exc}") from None
            except Exception as exc:  # YAML errors, unreadable files
                raise LiveError(f"kubeconfig {shown}: cannot read it: {exc}") from None
            names = [str(c.get("name")) for c in contexts or []]
            if opts.context and opts.context not in names:
                raise LiveError(f"kubeconfig {shown}: no context {opts.context!r} (contexts: "
                                f"{', '.join(names) or 'none'})")
            if not opts.context and not current:
                raise LiveError(f"kubeconfig {shown}: no current-context; give --context "
                                f"(contexts: {', '.join(names) or 'none'})")
            self.context = opts.context or str(current.get("name"))
            try:
                cfg_mod.load_kube_config(config_file=files, context=self.context,
                                         client_configuration=configuration,
                                         persist_config=False)
            except exc_mod.ConfigException as exc:
                raise LiveError(f"kubeconfig {shown}: context {self.context}: {exc}") from None
            except Exception as exc:  # an exec plugin that fails, a missing cert file, ...
                raise LiveError(f"kubeconfig {shown}: context {self.context}: "
                                f"{type(exc).__name__}: {exc}") from None
        configuration.retries = 0  # one try per request: a dead server is said at once
        self.server = str(configuration.host)
        # ApiClient alone: the typed API classes would import 250 pydantic models (4.7 s)
        self.api_client = client_mod.ApiClient(configuration=configuration)
        self.api_client.user_agent = "sourceip (read-only)"
        t = opts.request_timeout
        self.timeout: Any = (min(CONNECT_TIMEOUT, t), t) if t else None
        self.requests = 0

    def close(self) -> None:
        try:
            self.api_client.close()
        except Exception:  # closing is best effort
            pass

    # ---- one request ----
    def _get(self, path: str, query: list[tuple[str, Any]]) -> tuple[int, str, bytes]:
        """``GET path?query`` with the kubeconfig's credentials: (status, reason, body)."""
        c = self.api_client
        headers = {"Accept": "application/json"}
        if hasattr(c, "param_serialize"):  # the client generated by openapi-generator "python"
            method, url, hdrs, _body, _post = c.param_serialize(
                "GET", path, query_params=query, header_params=headers,
                auth_settings=["BearerToken"])
            resp = c.call_api(method, url, header_params=hdrs, _request_timeout=self.timeout)
            return int(resp.status), str(resp.reason or ""), bytes(resp.read() or b"")
        try:  # "python-legacy" clients (kubernetes < 32): errors are raised
            resp = c.call_api(path, "GET", query_params=query, header_params=headers,
                              auth_settings=["BearerToken"], _preload_content=False,
                              _return_http_data_only=True, _request_timeout=self.timeout)
        except self._api_exception as exc:
            body = exc.body if isinstance(exc.body, bytes) else str(exc.body or "").encode()
            return int(exc.status or 0), str(exc.reason or ""), body
        return int(resp.status), str(resp.reason or ""), bytes(resp.data or b"")

    def _call(self, path: str, what: str, query: list[tuple[str, Any]] | None = None) -> Obj:
        urllib3_exc = importlib.import_module("urllib3.exceptions")
        self.requests += 1
        try:
            status, reason, data = self._get(path, query or [])
        except urllib3_exc.HTTPError as exc:
            raise LiveError(self._unreachable(exc)) from None
        except OSError as exc:
            raise LiveError(self._unreachable(exc)) from None
        if not 200 <= status <= 299:
            raise self._status_error(status, reason, data, what)
        try:
            doc = _orjson.loads(data) if _orjson is not None else json.loads(data)
        except ValueError:
            raise LiveError(f"{self.server}: {what}: the answer is not JSON "
                            f"({len(data)} bytes)") from None
        if not isinstance(doc, dict):
            raise LiveError(f"{self.server}: {what}: expected a JSON object")
        return doc

    def _unreachable(self, exc: BaseException) -> str:
        reason = getattr(exc, "reason", None) or exc
        text = str(reason)
        if "timed out" in text.lower() or "timeout" in type(reason).__name__.lower():
            why = f"no answer within {self.opts.request_timeout:g}s (--request-timeout)"
        elif "refused" in text.lower():
            why = "connection refused"
        else:
            why = text.split(": ", 1)[-1] if "object at 0x" in text else text
        return (f"cannot reach the API server {self.server} (context {self.context}): {why}; "
                "is the cluster up and the kubeconfig current? (kubectl cluster-info)")

    def _status_error(self, status: int, reason: str, body: bytes, what: str) -> Exception:
        message = _status_message(body) or reason
        if status == 401:
            return LiveError(
                f"the API server {self.server} refused the credentials of context "
                f"{self.context} (401 Unauthorized): the token or client certificate is invalid "
                "or has expired; log in again (kubectl get nodes tells the same)")
        if status == 403:
            return Forbidden(message or f"403 Forbidden: {what}")
        if status == 404:
            return NotFound(what)
        if status == 410:
            return Expired(message)
        return LiveError(f"the API server {self.server} answered {status} {reason} to "
                         f"{what}: {message}".rstrip(": "))

    # ---- list / get ----
    def list_pages(self, kind: Resource, version: str, namespace: str | None) -> Iterator[Obj]:
        """Each page of the list (a ``*List`` dict as the API server sends it)."""
        from urllib.parse import quote

        base = f"/apis/{kind.group}/{version}" if kind.group else f"/api/{version}"
        scoped = namespace if kind.namespaced else None
        path = (f"{base}/namespaces/{quote(scoped, safe='')}/{kind.plural}" if scoped
                else f"{base}/{kind.plural}")
        what = (f"list {kind.plural} ({kind.api}{version}"
                + (f", namespace {namespace})" if scoped else ")"))
        token: str | None = None
        restarted = False
        last = ""  # the key (namespace/name) of the last item yielded: lists are in key order
        while True:
            query: list[tuple[str, Any]] = [("limit", self.opts.page_size)]
            if token:
                query.append(("continue", token))
            try:
                page = self._call(path, what, query)
            except Expired:
                if restarted or token is None:
                    raise LiveError(f"{self.server}: {what}: the list changed too fast to be "
                                    "paged (410 Gone twice)") from None
                # the token outlived the server's compaction (5-15 min): list again from the
                # start of the newest state, skipping the keys already yielded
                restarted, token = True, None
                continue
            items = page.get("items") or []
            if restarted and last:
                page["items"] = items = [i for i in items if _key(i) > last]
            if items:
                last = _key(items[-1])
            yield page
            token = (page.get("metadata") or {}).get("continue") or None
            if not token:
                return

    def get_config_map(self, namespace: str, name: str) -> Obj | None:
        """The ConfigMap, or None when it does not exist; ``Forbidden`` when it may not be
        read."""
        from urllib.parse import quote

        try:
            obj = self._call(f"/api/v1/namespaces/{quote(namespace, safe='')}/configmaps/"
                             f"{quote(name, safe='')}", f"get configmap {namespace}/{name}")
        except NotFound:
            return None
        obj.setdefault("apiVersion", "v1")
        obj.setdefault("kind", "ConfigMap")
        return obj


def _key(item: Any) -> str:
    meta = item.get("metadata") if isinstance(item, dict) else None
    if not isinstance(meta, dict):
        return ""
    return f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"


class Expired(Exception):
    pass


def _status_message(body: Any) -> str:
    """The ``message`` of a ``Status`` body (the API server's reason in words)."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not isinstance(body, str) or not body.strip():
        return ""
    try:
        doc = json.loads(body)
    except ValueError:
        return body.strip()[:200]
    return str(doc.get("message", "")) if isinstance(doc, dict) else ""
