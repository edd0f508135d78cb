"""Build a ``LabPlan`` for real, probe it, tear it down: the only module of sourceip that starts
processes.

Hygiene, in order of defence:

* every namespace is named ``sip-<runid>-...`` and none may exist before the run creates it;
  veth pairs are created straight into their namespaces, so the root namespace never holds
  an interface, address, route or rule of the lab;
* a state file ``/run/sourceip-lab/<runid>.json`` is written before anything is created: the
  owner PID and its start time, the namespaces, then the echo servers (PID, start time,
  namespace);
* ``Lab.down()`` runs on every exit path: ``with Lab(plan)`` / ``try``–``finally``,
  KeyboardInterrupt (SIGINT), SIGTERM and SIGHUP (turned into ``SystemExit``), ``atexit``;
* the echo servers exit on their own within half a second when their owner dies;
* the other processes a plan holds (real nginx / haproxy as ingress controllers or as the load
  balancer, kube-proxy health servers) run in the foreground with their files in the run's own
  directory ``/run/sourceip-lab/<runid>.d/``; they are recorded in the state file like the echo
  servers (with a marker: that directory, which their command line names) and stopped by PID;
* after a SIGKILL, the next run (or ``lab down --all-stale``) finds the state file of a dead
  owner and removes its namespaces, killing recorded PIDs only after checking that the
  process still has the recorded start time, command line and network namespace.

Processes are only ever signalled by PID.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import fcntl
import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any, TypeVar

from sourceip.errors import LabError, LabPreconditionError, LookupFailed
from sourceip.lab.model import LabPlan, NsSetup, Observation, ProbeSpec
from sourceip.lab.plan import NS_RE, ns_prefix, sysctl_line

STATE_DIR = Path("/run/sourceip-lab")
NETNS_DIR = Path("/run/netns")
READY_TIMEOUT = 20.0
PROBE_TIMEOUT = 1.0
SETUP_WORKERS = 16

# ----------------------------------------------------------------------------- /proc helpers


def proc_start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (``/proc/PID/stat`` field 22), or
    ``None`` when there is no such process. PID + start time identify a process for good."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def proc_cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def proc_netns(pid: int) -> int | None:
    """Inode of the process's network namespace."""
    try:
        link = os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None
    try:
        return int(link.split("[", 1)[1].rstrip("]"))
    except (IndexError, ValueError):
        return None


def netns_inode(name: str) -> int | None:
    try:
        return (NETNS_DIR / name).stat().st_ino
    except OSError:
        return None


def netns_names() -> list[str]:
    """Every named network namespace (``/run/netns``)."""
    try:
        return sorted(os.listdir(NETNS_DIR))
    except OSError:
        return []


def lab_namespaces(runid: str | None = None) -> list[str]:
    """Named namespaces that look like the lab's (``sip-<6 hex>-``), of one run or all."""
    names = [n for n in netns_names() if NS_RE.match(n)]
    if runid is not None:
        prefix = ns_prefix(runid)
        names = [n for n in names if n.startswith(prefix)]
    return names


def _src_path() -> str:
    import sourceip

    return str(Path(sourceip.__file__).resolve().parent.parent)


def child_env() -> dict[str, str]:
    """The environment for lab children: this interpreter's ``sourceip`` on PYTHONPATH."""
    env = dict(os.environ)
    src = _src_path()
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


# ----------------------------------------------------------------------------- preconditions


def preflight(plan: LabPlan) -> list[str]:
    """Raise ``LabPreconditionError`` naming what to install when the lab cannot run here;
    returns notes about what was done to make it run (a module loaded)."""
    notes: list[str] = []
    if os.geteuid() != 0:
        raise LabPreconditionError(
            "the lab needs root (it creates network namespaces): run it with sudo"
        )
    if not Path("/proc/self/ns/net").exists():
        raise LabPreconditionError("this kernel has no network namespaces (CONFIG_NET_NS)")
    if 6 in plan.families and not Path("/proc/sys/net/ipv6").is_dir():
        raise LabPreconditionError(
            "the cluster has IPv6 addresses but this kernel has no IPv6 (ipv6.disable=1 or no "
            "CONFIG_IPV6): the lab cannot build its IPv6 half")
    tools = {"ip": "iproute2"}
    if any(s.bridge for s in plan.setups):
        tools["bridge"] = "iproute2"
    for s in plan.setups:
        for load in s.loads:
            tools[load.argv[0]] = "nftables" if load.argv[0] == "nft" else "iptables"
    missing = [f"{tool} (install {pkg})" for tool, pkg in tools.items() if not shutil.which(tool)]
    if missing:
        raise LabPreconditionError("missing tools: " + ", ".join(missing))
    needs_brnf = any(
        sc.path.startswith("net/bridge/") and not sc.optional
        for s in plan.setups for sc in s.sysctls
    )
    knob = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
    if needs_brnf and not knob.exists():
        res = subprocess.run(["modprobe", "br_netfilter"], capture_output=True, text=True,
                             check=False)
        if not knob.exists():
            raise LabPreconditionError(
                "the bridge profile needs br_netfilter (net.bridge.bridge-nf-call-iptables) "
                "and `modprobe br_netfilter` failed: " + (res.stderr.strip() or "no module")
                + "; load the module, or use a routed NetworkProfile"
            )
        notes.append("loaded the br_netfilter module")
    return notes


# ----------------------------------------------------------------------------- run state


@dataclass(slots=True, kw_only=True)
class RunState:
    """What a run leaves in ``/run/sourceip-lab/<runid>.json`` (enough to probe it from
    another process and to clean it up after a crash)."""

    runid: str
    owner_pid: int
    owner_start: int | None
    namespaces: list[str]
    servers: list[dict[str, Any]] = field(default_factory=list)
    clients: dict[str, str] = field(default_factory=dict)
    via_ports: dict[str, list[int]] = field(default_factory=dict)
    external_ip: str = ""
    python: str = sys.executable
    created: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return {
            "runid": self.runid,
            "owner_pid": self.owner_pid,
            "owner_start": self.owner_start,
            "namespaces": self.namespaces,
            "servers": self.servers,
            "clients": self.clients,
            "via_ports": self.via_ports,
            "external_ip": self.external_ip,
            "python": self.python,
            "created": self.created,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunState:
        return cls(
            runid=str(data["runid"]),
            owner_pid=int(data["owner_pid"]),
            owner_start=data.get("owner_start"),
            namespaces=list(data.get("namespaces", [])),
            servers=list(data.get("servers", [])),
            clients=dict(data.get("clients", {})),
            via_ports={k: list(v) for k, v in dict(data.get("via_ports", {})).items()},
            external_ip=str(data.get("external_ip", "")),
            python=str(data.get("python", sys.executable)),
            created=float(data.get("created", 0.0)),
        )

    def save(self, state_dir: Path) -> Path:
        state_dir.mkdir(parents=True, exist_ok=True)
        path = state_dir / f"{self.runid}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1))
        os.replace(tmp, path)
        return path

    @property
    def owner_alive(self) -> bool:
        start = proc_start_time(self.owner_pid)
        return start is not None and (self.owner_start is None or start == self.owner_start)


def load_state(runid: str, state_dir: Path = STATE_DIR) -> RunState:
    ns_prefix(runid)  # validates the run id
    path = state_dir / f"{runid}.json"
    try:
        return RunState.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        raise LookupFailed(f"no lab run {runid!r} (no {path})") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise LabError(f"{path}: unreadable state file: {exc}") from exc


def list_states(state_dir: Path = STATE_DIR) -> list[RunState]:
    out = []
    for path in sorted(state_dir.glob("*.json")) if state_dir.is_dir() else []:
        try:
            out.append(RunState.from_json(json.loads(path.read_text())))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return out


def server_is_ours(server: Mapping[str, Any], runid: str) -> bool:
    """The recorded PID is still the process we started: same start time, our command line
    (an echo server with our run id, or a process whose command line names the run's
    directory, its ``marker``), and (while the namespace exists) our namespace."""
    pid = int(server["pid"])
    if pid <= 1 or proc_start_time(pid) != server.get("start"):
        return False
    argv = proc_cmdline(pid)
    marker = server.get("marker")
    if marker:
        if f"/{runid}.d/" not in str(marker) or not any(str(marker) in a for a in argv):
            return False
    elif "sourceip.lab.echo_server" not in argv or runid not in argv:
        return False
    want = netns_inode(str(server.get("ns", "")))
    return want is None or proc_netns(pid) == want


def kill_servers(servers: Sequence[Mapping[str, Any]], runid: str, timeout: float = 2.0) -> None:
    """SIGTERM, then SIGKILL, every recorded server that is still ours (checked each time)."""
    live = [s for s in servers if server_is_ours(s, runid)]
    for s in live:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(s["pid"]), signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while live and time.monotonic() < deadline:
        time.sleep(0.02)
        live = [s for s in live if server_is_ours(s, runid)]
    for s in live:
        if server_is_ours(s, runid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(s["pid"]), signal.SIGKILL)


def delete_namespaces(names: Iterable[str]) -> list[str]:
    """Delete the named namespaces that exist (one ``ip -batch``); returns those that remain."""
    existing = [n for n in names if (NETNS_DIR / n).exists()]
    if existing:
        subprocess.run(["ip", "-force", "-batch", "-"],
                       input="".join(f"netns del {n}\n" for n in existing),
                       capture_output=True, text=True, check=False)
    remaining = [n for n in existing if (NETNS_DIR / n).exists()]
    for n in remaining:
        subprocess.run(["ip", "netns", "del", n], capture_output=True, check=False)
    return [n for n in remaining if (NETNS_DIR / n).exists()]


def teardown_state(state: RunState, state_dir: Path = STATE_DIR) -> list[str]:
    """Remove what a run's state file records; returns namespaces that could not be deleted."""
    prefix = ns_prefix(state.runid)
    kill_servers(state.servers, state.runid)
    left = delete_namespaces(n for n in state.namespaces if n.startswith(prefix))
    if not left:
        remove_run_files(state.runid, state_dir)
    return left


def remove_run_files(runid: str, state_dir: Path = STATE_DIR) -> None:
    """The run's state file, log and process directory."""
    for suffix in (".json", ".log", ".tmp"):
        with contextlib.suppress(FileNotFoundError):
            (state_dir / f"{runid}{suffix}").unlink()
    workdir = state_dir / f"{runid}.d"
    if workdir.is_dir() and not workdir.is_symlink():
        shutil.rmtree(workdir, ignore_errors=True)


_CLONE_NEWNET = 0x40000000
IPV6_SETTLE_TIMEOUT = 5.0  # seconds for link-local addresses to finish DAD (lab up)
T = TypeVar("T")


def in_netns(name: str, fn: Callable[[], T]) -> T:
    """``fn()`` run by a thread that entered the named network namespace (``setns`` moves the
    calling thread only; threads it starts inherit the namespace). The caller's namespace is
    never changed."""
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            path = NETNS_DIR / name
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(path, os.O_RDONLY)
            try:
                if libc.setns(fd, _CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns {name}: {os.strerror(err)}")
            finally:
                os.close(fd)
            got = os.readlink("/proc/thread-self/ns/net")
            if got != f"net:[{path.stat().st_ino}]":
                raise LabError(f"setns {name}: the thread is still in {got}")
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            out["error"] = exc

    t = threading.Thread(target=target, name=f"netns-{name}")
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["value"]  # type: ignore[no-any-return]


def listening_ports(pid: int) -> set[int]:
    """TCP ports in LISTEN state in the network namespace of process ``pid``."""
    ports: set[int] = set()
    for name in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == "0A":
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def clean_stale(state_dir: Path = STATE_DIR) -> list[str]:
    """Tear down every run whose owner is dead; returns their run ids."""
    cleaned = []
    for state in list_states(state_dir):
        if state.owner_alive:
            continue
        path = state_dir / f"{state.runid}.json"
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # someone else is cleaning it
            teardown_state(state, state_dir)
            cleaned.append(state.runid)
        finally:
            os.close(fd)
    return cleaned


def orphan_namespaces(state_dir: Path = STATE_DIR) -> list[str]:
    """Lab-like namespaces that no state file accounts for (e.g. a dry-run script's)."""
    known = {n for s in list_states(state_dir) for n in s.namespaces}
    return [n for n in lab_namespaces() if n not in known]


def down_run(runid: str, state_dir: Path = STATE_DIR, wait: float = 10.0) -> str:
    """Stop run ``runid``: ask a live owner to tear down (SIGTERM to its PID), else remove it
    here. Returns what was done."""
    state = load_state(runid, state_dir)
    if state.owner_alive and state.owner_pid != os.getpid():
        os.kill(state.owner_pid, signal.SIGTERM)
        deadline = time.monotonic() + wait
        path = state_dir / f"{runid}.json"
        while time.monotonic() < deadline and path.exists():
            time.sleep(0.05)
        if not path.exists():
            return f"lab {runid}: owner {state.owner_pid} tore it down"
    left = teardown_state(state, state_dir)
    if left:
        raise LabError(f"lab {runid}: could not delete namespaces {', '.join(left)}")
    return f"lab {runid}: removed"


# ----------------------------------------------------------------------------- commands


def _run(argv: Sequence[str], *, input: str | None = None, what: str,
         env: Mapping[str, str] | None = None) -> None:
    res = subprocess.run(list(argv), input=input, capture_output=True, text=True, check=False,
                         env=None if env is None else dict(env))
    if res.returncode != 0:
        detail = (res.stderr or res.stdout).strip()
        m = re.search(r"Command failed -:(\d+)", detail)
        if m and input is not None:
            lines = input.splitlines()
            n = int(m.group(1))
            if 0 < n <= len(lines):
                detail += f" (line {n}: {lines[n - 1]!r})"
        raise LabError(f"{what}: `{' '.join(argv)}` failed ({res.returncode}): {detail}")


def apply_setup(setup: NsSetup, python: str = sys.executable,
                env: Mapping[str, str] | None = None, *, create_nfacct: bool = True) -> None:
    """Configure one namespace: its ``ip`` batch, ``ip -6`` batch, ``bridge`` batch, sysctls
    (one shell inside the namespace), its nfacct counters (unless the caller made them
    already), then each rule load, in that order."""
    ns = setup.ns
    if setup.ip:
        _run(["ip", "-n", ns, "-batch", "-"], input="\n".join(setup.ip) + "\n",
             what=f"{ns}: ip")
    if setup.ip6:
        _run(["ip", "-6", "-n", ns, "-batch", "-"], input="\n".join(setup.ip6) + "\n",
             what=f"{ns}: ip -6")
    if setup.bridge:
        _run(["bridge", "-n", ns, "-batch", "-"], input="\n".join(setup.bridge) + "\n",
             what=f"{ns}: bridge")
    if setup.sysctls:
        script = "\n".join(sysctl_line(s) for s in setup.sysctls)
        _run(["ip", "netns", "exec", ns, "sh", "-ec", script], what=f"{ns}: sysctls")
    if setup.nfacct and create_nfacct:
        _run(["ip", "netns", "exec", ns, python, "-m", "sourceip.lab.nfacct", *setup.nfacct],
             what=f"{ns}: nfacct counters", env=env)
    for load in setup.loads:
        _run(["ip", "netns", "exec", ns, *load.argv], input=load.text,
             what=f"{ns}: loading {load.label} rules")


# ----------------------------------------------------------------------------- probing


def _probe_batches(
    specs: Sequence[ProbeSpec],
    clients: Mapping[str, str],
    via_ports: Mapping[str, Sequence[int]],
    attempts: Mapping[str, int] | int,
) -> tuple[dict[str, list[dict[str, Any]]], list[Observation]]:
    batches: dict[str, list[dict[str, Any]]] = {}
    errors: list[Observation] = []
    for spec in specs:
        n = attempts if isinstance(attempts, int) else attempts.get(spec.id, 1)
        ns = clients.get(spec.client)
        if ns is None:
            errors += [Observation(spec_id=spec.id, attempt=a, disposition="error",
                                   error=f"no client {spec.client!r} in the lab")
                       for a in range(n)]
            continue
        sport: list[int] | None = None
        if spec.client == "external" and spec.via_node is not None:
            rng = via_ports.get(spec.via_node)
            if rng is None:
                errors += [Observation(spec_id=spec.id, attempt=a, disposition="error",
                                       error=f"no node {spec.via_node!r} in the lab")
                           for a in range(n)]
                continue
            sport = [int(rng[0]), int(rng[1])]
        for a in range(n):
            probe: dict[str, Any] = {
                "id": spec.id, "attempt": a, "proto": spec.proto, "dst_ip": spec.dst_ip,
                "dst_port": spec.dst_port, "sport_range": sport,
            }
            if spec.proto == "http":
                probe["http"] = {"host": spec.http_host, "path": spec.http_path,
                                 "headers": [list(h) for h in spec.http_headers]}
            batches.setdefault(ns, []).append(probe)
    return batches, errors


def run_probes(
    specs: Sequence[ProbeSpec],
    *,
    clients: Mapping[str, str],
    via_ports: Mapping[str, Sequence[int]],
    python: str = sys.executable,
    attempts: Mapping[str, int] | int = 1,
    timeout: float = PROBE_TIMEOUT,
    track: set[subprocess.Popen[str]] | None = None,
) -> list[Observation]:
    """Run every probe: one probe client per client namespace, all namespaces at once, each
    client running its probes concurrently. Returns one observation per probe attempt."""
    batches, observations = _probe_batches(specs, clients, via_ports, attempts)
    env = child_env()
    lock = threading.Lock()

    def one(ns: str, probes: list[dict[str, Any]]) -> list[Observation]:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, python, "-m", "sourceip.lab.probe"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=env,
        )
        if track is not None:
            with lock:
                track.add(proc)
        try:
            out, err = proc.communicate(json.dumps({"timeout": timeout, "probes": probes}),
                                        timeout=timeout * 4 + 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        finally:
            if track is not None:
                with lock:
                    track.discard(proc)
        got: list[Observation] = []
        for line in out.splitlines():
            if line.strip():
                got.append(Observation.from_json(json.loads(line)))
        seen = {(o.spec_id, o.attempt) for o in got}
        for p in probes:
            if (p["id"], p["attempt"]) not in seen:
                got.append(Observation(spec_id=p["id"], attempt=p["attempt"],
                                       disposition="error",
                                       error=f"probe client in {ns} failed: {err.strip()[-300:]}"))
        return got

    if batches:
        with ThreadPoolExecutor(max_workers=min(32, len(batches))) as pool:
            for got in pool.map(lambda kv: one(*kv), batches.items()):
                observations += got
    order = {s.id: i for i, s in enumerate(specs)}
    observations.sort(key=lambda o: (order.get(o.spec_id, 0), o.attempt))
    return observations


def probe_run(runid: str, specs: Sequence[ProbeSpec], *, attempts: int = 1,
              state_dir: Path = STATE_DIR, timeout: float = PROBE_TIMEOUT) -> list[Observation]:
    """Probe a lab that another process keeps up (``sourceip lab up``)."""
    state = load_state(runid, state_dir)
    if not state.owner_alive:
        raise LabError(f"lab {runid} is stale (owner {state.owner_pid} is gone): "
                       "run `sourceip lab down --all-stale`")
    return run_probes(specs, clients=state.clients, via_ports=state.via_ports,
                      python=state.python, attempts=attempts, timeout=timeout)


# ----------------------------------------------------------------------------- the lab

_ACTIVE: set[Lab] = set()
_ACTIVE_LOCK = threading.Lock()


def _teardown_active() -> None:
    with _ACTIVE_LOCK:
        labs = list(_ACTIVE)
    for lab in labs:
        lab.down()


atexit.register(_teardown_active)


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


class Lab:
    """A plan built for real. Use as a context manager (or call ``up``/``down``)::

        with Lab(plan) as lab:
            observations = lab.probe(specs)
    """

    def __init__(self, plan: LabPlan, *, python: str | None = None,
                 state_dir: Path = STATE_DIR, probe_timeout: float = PROBE_TIMEOUT) -> None:
        self.plan = plan
        self.runid = plan.runid
        self.python = python or sys.executable
        self.state_dir = state_dir
        self.probe_timeout = probe_timeout
        self.notes: list[str] = []
        self.timings: dict[str, float] = {}
        self.health_checks: list[dict[str, Any]] = []
        self._servers: list[tuple[subprocess.Popen[bytes], dict[str, Any]]] = []
        self._echo: list[tuple[subprocess.Popen[bytes], dict[str, Any]]] = []
        self._probes: set[subprocess.Popen[str]] = set()
        self._state: RunState | None = None
        self._old_handlers: dict[int, Any] = {}
        self._is_up = False
        self._down = False
        self._log: IO[bytes] | None = None

    # -- lifecycle
    def __enter__(self) -> Lab:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    @property
    def state_path(self) -> Path:
        return self.state_dir / f"{self.runid}.json"

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGHUP):
            old = signal.getsignal(sig)
            if old in (signal.SIG_DFL, None):
                self._old_handlers[sig] = old
                signal.signal(sig, _raise_exit)

    def _restore_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig, old in self._old_handlers.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, old)
        self._old_handlers.clear()

    def _save_state(self) -> None:
        assert self._state is not None
        self._state.save(self.state_dir)

    def up(self) -> None:
        """Build the namespaces, links, addresses, routes, sysctls and rules; start the echo
        servers and wait until each is listening. On any failure everything built is removed
        before the error propagates."""
        if self._is_up or self._down:
            raise LabError(f"lab {self.runid} was already started")
        self.notes += preflight(self.plan)
        cleaned = clean_stale(self.state_dir)
        if cleaned:
            self.notes.append(f"removed stale lab run(s) {', '.join(cleaned)}")
        clash = [n for n in self.plan.namespace_names if (NETNS_DIR / n).exists()]
        if clash:
            raise LabError(f"namespaces of run {self.runid} already exist: {', '.join(clash)}")
        self._state = RunState(
            runid=self.runid, owner_pid=os.getpid(), owner_start=proc_start_time(os.getpid()),
            namespaces=list(self.plan.namespace_names), clients=dict(self.plan.clients),
            via_ports={k: list(v) for k, v in self.plan.via_ports}, python=self.python,
            external_ip=self.plan.external_ip,
        )
        self._install_signals()
        with _ACTIVE_LOCK:
            _ACTIVE.add(self)
        self._is_up = True
        try:
            self._save_state()
            self._build()
        except BaseException:
            self.down()
            raise

    def _build(self) -> None:
        t0 = time.monotonic()
        root = [f"netns add {n}" for n in self.plan.namespace_names]
        root += [v.command() for v in self.plan.veths]
        _run(["ip", "-batch", "-"], input="\n".join(root) + "\n", what="creating namespaces")
        env = child_env()
        counters = {n for s in self.plan.setups for n in s.nfacct}
        if counters:
            # one interpreter for every node, rather than one per node
            args = [a for s in self.plan.setups if s.nfacct for a in ("--netns", s.ns)]
            _run([self.python, "-m", "sourceip.lab.nfacct", *args, "--", *sorted(counters)],
                 what="creating nfacct counters", env=env)
        t1 = time.monotonic()
        with ThreadPoolExecutor(max_workers=SETUP_WORKERS) as pool:
            list(pool.map(lambda s: apply_setup(s, self.python, env, create_nfacct=False),
                          self.plan.setups))
        if 6 in self.plan.families:
            self._wait_ipv6_settled()
        t2 = time.monotonic()
        # echo servers and the other processes start together (their interpreters' start-up
        # overlaps); each is recorded in the state file before anything waits on it
        self._launch_servers()
        started = self._launch_processes(self.plan.processes)
        self._save_state()
        self._wait_ready()
        t3 = time.monotonic()
        self._wait_listening(started)
        t4 = time.monotonic()
        self._build_load_balancers()
        t5 = time.monotonic()
        self.timings.update(namespaces=t1 - t0, setup=t2 - t1, servers=t3 - t2,
                            processes=t4 - t3, up=t5 - t0)
        if self.plan.load_balancers:
            self.timings["load_balancers"] = t5 - t4

    def _wait_ipv6_settled(self, timeout: float = IPV6_SETTLE_TIMEOUT) -> None:
        """Wait until no namespace holds a *tentative* IPv6 address. The lab's own addresses
        skip duplicate address detection (``nodad``), but the link-local address the kernel
        gives every interface does not, and until it is valid a router cannot send neighbour
        solicitations for the packets it forwards (they would be lost, like drops)."""
        deadline = time.monotonic() + timeout
        pending = list(self.plan.namespace_names)
        while pending:
            pending = [ns for ns in pending if subprocess.run(
                ["ip", "-6", "-n", ns, "addr", "show", "tentative"], capture_output=True,
                text=True, check=False).stdout.strip()]
            if not pending:
                return
            if time.monotonic() > deadline:
                self.notes.append(f"IPv6 addresses still tentative after {timeout:.0f} s in "
                                  f"{', '.join(pending)}")
                return
            time.sleep(0.1)

    def _build_load_balancers(self) -> None:
        """Health-check every node from the router, keep the candidates that pass, and build
        each pool: ECMP routes, an nft DNAT, or haproxy (``lab.lb``). The checks, predicted
        and observed, are kept in ``self.health_checks``."""
        if not self.plan.load_balancers:
            return
        from sourceip.lab.lb import check_request, normalise, pool_config

        lbs = self.plan.load_balancers
        rtr = next(n.name for n in self.plan.namespaces if n.role == "router")
        request = check_request(lbs)
        observed: dict[str, str] = {}
        if request["checks"]:
            # what `python -m sourceip.lab.lbcheck` does in the router, from a thread that
            # entered the router's namespace (no interpreter to start)
            from sourceip.lab.lbcheck import run_one

            def checks() -> list[dict[str, Any]]:
                with ThreadPoolExecutor(max_workers=min(32, len(request["checks"]))) as pool:
                    return list(pool.map(lambda c: run_one(c, float(request["timeout"])),
                                         request["checks"]))

            for row in in_netns(rtr, checks):
                observed[str(row["id"])] = str(row["observed"])
        self.health_checks = []
        for lb in lbs:
            pool = {c.id for c in lb.pool({c.id: normalise(c.kind, observed.get(c.id, "-"))
                                           for c in lb.checks})}
            for c in lb.checks:
                got = normalise(c.kind, observed.get(c.id, "-"))
                self.health_checks.append({
                    "id": c.id, "family": c.family,
                    "service": lb.service, "node": c.node, "kind": c.kind, "port": c.port,
                    "path": c.path, "predicted": c.predicted, "observed": got,
                    "raw": observed.get(c.id, "-"), "agree": got == c.predicted,
                    "in_pool": c.id in pool, "target": c.target})
        statuses = {str(r["id"]): str(r["observed"]) for r in self.health_checks}
        ip_lines, nft, haproxy = pool_config(lbs, statuses, workdir=self.plan.workdir,
                                             router_ns=rtr)
        if ip_lines:
            _run(["ip", "-n", rtr, "-batch", "-"], input="\n".join(ip_lines) + "\n",
                 what=f"{rtr}: load balancer routes")
        if nft:
            _run(["ip", "netns", "exec", rtr, "nft", "-f", "-"], input=nft,
                 what=f"{rtr}: load balancer DNAT")
        if haproxy is not None:
            self._start_processes((haproxy,))

    def _start_processes(self, processes: Sequence[Any]) -> None:
        """Start processes of the plan (controllers, load balancer, health servers), each
        recorded before it can bind anything, and wait until each listens."""
        started = self._launch_processes(processes)
        self._save_state()
        self._wait_listening(started)

    def _launch_processes(self, processes: Sequence[Any]
                          ) -> list[tuple[subprocess.Popen[bytes], Any]]:
        """Write each process's files and start it (recorded in the state, not yet saved)."""
        if not processes:
            return []
        assert self._state is not None
        env = child_env()
        workdir = self.state_dir / f"{self.runid}.d"
        workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(workdir, 0o755)
        if self._log is None:
            self._log = open(self.state_dir / f"{self.runid}.log", "ab")  # noqa: SIM115
        started: list[tuple[subprocess.Popen[bytes], Any]] = []
        for lp in processes:
            Path(lp.workdir).mkdir(parents=True, exist_ok=True)
            for path, text in lp.files:
                Path(path).write_text(text)
            argv = ["ip", "netns", "exec", lp.ns, *lp.command(self.python, os.getpid())]
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                    stderr=self._log, env=env, start_new_session=True)
            record = {"pid": proc.pid, "start": proc_start_time(proc.pid), "ns": lp.ns,
                      "pod": lp.pod or lp.name, "program": lp.program, "role": lp.role,
                      "marker": f"{lp.workdir}/"}
            self._servers.append((proc, record))
            self._state.servers.append(record)
            started.append((proc, lp))
        return started

    def _wait_listening(self, started: list[tuple[subprocess.Popen[bytes], Any]]) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        pending = list(started)
        while pending:
            still = []
            for proc, lp in pending:
                if proc.poll() is not None:
                    raise LabError(f"{lp.program} ({lp.name}) in {lp.ns} exited "
                                   f"({proc.returncode}): {self._process_log(lp)}")
                if not set(lp.listen) <= listening_ports(proc.pid):
                    still.append((proc, lp))
            pending = still
            if pending and time.monotonic() > deadline:
                names = ", ".join(lp.name for _p, lp in pending)
                raise LabError(f"not listening after {READY_TIMEOUT:.0f}s: {names}")
            if pending:
                time.sleep(0.02)

    def _process_log(self, lp: Any) -> str:
        for name in ("error.log",):
            path = Path(lp.workdir) / name
            if path.exists():
                text = path.read_text(errors="replace").strip()
                if text:
                    return text[-500:]
        return self._log_tail()

    def _launch_servers(self) -> None:
        if not self.plan.servers:
            return
        env = child_env()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.state_dir / f"{self.runid}.log", "ab")  # noqa: SIM115
        assert self._state is not None
        for srv in self.plan.servers:
            argv = ["ip", "netns", "exec", srv.ns,
                    *srv.argv(self.python, self.runid, os.getpid())]
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=self._log, env=env, start_new_session=True)
            record = {"pid": proc.pid, "start": proc_start_time(proc.pid), "ns": srv.ns,
                      "pod": srv.pod}
            self._servers.append((proc, record))
            self._echo.append((proc, record))
            self._state.servers.append(record)

    def _wait_ready(self) -> None:
        sel = selectors.DefaultSelector()
        pending: dict[int, tuple[subprocess.Popen[bytes], dict[str, Any]]] = {}
        for proc, record in self._echo:
            assert proc.stdout is not None
            os.set_blocking(proc.stdout.fileno(), False)
            sel.register(proc.stdout, selectors.EVENT_READ, (proc, record))
            pending[proc.pid] = (proc, record)
        buffers: dict[int, bytes] = {}
        deadline = time.monotonic() + READY_TIMEOUT
        try:
            while pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    names = ", ".join(r["pod"] for _p, r in pending.values())
                    raise LabError(f"echo servers not ready after {READY_TIMEOUT:.0f}s: {names}")
                for key, _ in sel.select(timeout=left):
                    proc, record = key.data
                    chunk = os.read(key.fd, 4096)
                    if not chunk:
                        sel.unregister(key.fileobj)
                        proc.wait(timeout=5)
                        raise LabError(
                            f"echo server for {record['pod']} in {record['ns']} exited "
                            f"({proc.returncode}): {self._log_tail()}"
                        )
                    buffers[proc.pid] = buffers.get(proc.pid, b"") + chunk
                    if b"\n" in buffers[proc.pid]:
                        sel.unregister(key.fileobj)
                        pending.pop(proc.pid, None)
        finally:
            sel.close()
        for proc, _record in self._echo:
            if proc.stdout is not None:
                proc.stdout.close()

    def _log_tail(self) -> str:
        try:
            text = (self.state_dir / f"{self.runid}.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return text.strip()[-500:] or "(no output)"

    # -- probing
    def probe(self, specs: Sequence[ProbeSpec], *, attempts: Mapping[str, int] | int = 1
              ) -> list[Observation]:
        """Probe every spec (``attempts`` times each, or per spec id)."""
        if not self._is_up or self._down:
            raise LabError(f"lab {self.runid} is not up")
        if self.plan.load_balancers and any(s.via_lb for s in specs) and \
                not self.health_checks:
            raise LabError(f"lab {self.runid}: the load balancers were not built")
        return run_probes(specs, clients=dict(self.plan.clients),
                          via_ports={k: list(v) for k, v in self.plan.via_ports},
                          python=self.python, attempts=attempts, timeout=self.probe_timeout,
                          track=self._probes)

    # -- teardown
    def down(self) -> None:
        """Remove everything this run created (idempotent, signals held off meanwhile)."""
        if self._down:
            return
        self._down = True
        # Hold signals off while tearing down: a second Ctrl-C must not leave half a lab.
        deferred: list[int] = []
        held: dict[signal.Signals, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                held[sig] = signal.getsignal(sig)
                signal.signal(sig, lambda signum, _frame: deferred.append(signum))
        t0 = time.monotonic()
        try:
            for probe_proc in list(self._probes):
                with contextlib.suppress(ProcessLookupError):
                    probe_proc.kill()
            for proc, _record in self._servers:
                if proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.terminate()
            deadline = time.monotonic() + 2.0
            for proc, _record in self._servers:
                try:
                    proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            left: list[str] = []
            if self._state is not None:
                left = delete_namespaces(self.plan.namespace_names)
                if not left:
                    remove_run_files(self.runid, self.state_dir)
            if self._log is not None:
                self._log.close()
            if left:
                self.notes.append(f"could not delete namespaces: {', '.join(left)}")
        finally:
            self.timings["down"] = time.monotonic() - t0
            with _ACTIVE_LOCK:
                _ACTIVE.discard(self)
            for held_sig, handler in held.items():
                signal.signal(held_sig, handler)
            self._restore_signals()
        if deferred:
            if deferred[0] == signal.SIGINT:
                raise KeyboardInterrupt
            raise SystemExit(128 + deferred[0])


def wait_for_signal() -> None:
    """Block until SIGINT/SIGTERM/SIGHUP (they raise KeyboardInterrupt / SystemExit)."""
    while True:
        signal.pause()
