"""The HTML report of every built-in example in a real browser (Debian's headless Chromium,
driven over the DevTools protocol on a pipe: stdlib only, no websocket, no Playwright).

One Chromium for the whole module; each report is loaded from a file:// URL and checked: no
console error or exception, no request other than the file itself, a section per Service with
a drawing per path, every address a pod sees present as selectable SVG text, the print layout
(no navigation, drawings within the page). A screenshot of one example is written to the
test's tmp dir (and to ``$SOURCEIP_REPORT_SHOTS`` when set, for people to look at).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-default-apps", "--disable-extensions", "--mute-audio",
         "--remote-debugging-pipe")
TIMEOUT = 30.0
ROOT = Path(__file__).resolve().parents[2]


def _chromium() -> str | None:
    for name in ("/usr/lib/chromium/chromium", "chromium", "chromium-browser"):
        found = shutil.which(name) if "/" not in name else (name if os.access(name, os.X_OK)
                                                            else None)
        if found:
            return found
    return None


class Browser:
    """Chromium with ``--remote-debugging-pipe``: NUL-separated JSON messages on fds 3 (in)
    and 4 (out) of the browser process. One page target, attached with a flat session."""

    def __init__(self, exe: str) -> None:
        self.profile = tempfile.mkdtemp(prefix="sourceip-chromium-")
        to_r, self._to_w = os.pipe()
        self._from_r, from_w = os.pipe()

        def fds() -> None:  # in the child: the pipe ends as fds 3 and 4 (inheritable)
            a = fcntl.fcntl(to_r, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(from_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [exe, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            close_fds=False, preexec_fn=fds, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_r)
        os.close(from_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget",
                                 {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.page(f"{domain}.enable")

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            if time.monotonic() > deadline:
                raise TimeoutError("Chromium did not answer")
            chunk = os.read(self._from_r, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        data: dict[str, Any] = json.loads(msg)
        return data

    def call(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None) -> dict[str, Any]:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT
        while True:
            data = self._read(deadline)
            if data.get("id") == self._id:
                if "error" in data:
                    raise RuntimeError(f"{method}: {data['error']}")
                result: dict[str, Any] = data.get("result", {})
                return result
            self.events.append(data)

    def page(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.call(method, params, self.session)

    def wait_event(self, method: str) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT
        for i, ev in enumerate(self.events):
            if ev.get("method") == method:
                return self.events.pop(i)
        while True:
            data = self._read(deadline)
            if data.get("method") == method:
                return data
            self.events.append(data)

    def load(self, url: str) -> None:
        self.events.clear()
        self.page("Page.navigate", {"url": url})
        self.wait_event("Page.loadEventFired")

    def js(self, expression: str) -> Any:
        r = self.page("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def problems(self) -> list[str]:
        """Console errors, uncaught exceptions, log errors and CSP violations seen so far."""
        out = []
        for ev in self.events:
            m, p = ev.get("method"), ev.get("params", {})
            if m == "Runtime.exceptionThrown":
                out.append(f"exception: {p.get('exceptionDetails', {}).get('text')}")
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert",
                                                                        "warning"):
                out.append(f"console.{p.get('type')}: {p.get('args')}")
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") in ("error",
                                                                                "warning"):
                out.append(f"log: {p['entry'].get('text')}")
        return out

    def requests(self) -> list[str]:
        return [ev["params"]["request"]["url"] for ev in self.events
                if ev.get("method") == "Network.requestWillBeSent"]

    def screenshot(self, path: Path, width: int = 1440) -> None:
        self.page("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False})
        height = int(self.js("document.documentElement.scrollHeight"))
        shot = self.page("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": min(height, 6000), "scale": 1}})
        path.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_w)
        os.close(self._from_r)
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    exe = _chromium()
    if exe is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run does)")
    b = Browser(exe)
    try:
        yield b
    finally:
        b.close()


# ----------------------------------------------------------------------------- the tests

PAGE_FACTS = """(() => [...document.querySelectorAll('section.item')].map(sec => ({
  heading: sec.querySelector('h2').textContent,
  paths: [...sec.querySelectorAll('article.path')].map(a => {
    const svgs = a.querySelectorAll('svg.path');
    const texts = [...a.querySelectorAll('svg.path text')];
    return {
      title: a.querySelector('h4').textContent,
      svgs: svgs.length,
      text: texts.map(t => t.textContent).join('\\n'),
      selectable: texts.every(t => getComputedStyle(t).userSelect !== 'none'),
      rewrites: [...a.querySelectorAll('svg.path g.rewrite')].map(g => g.textContent),
      overflow: [...svgs].some(s => s.getBBox().width > s.viewBox.baseVal.width + 1),
    };
  }),
})))()"""

SELECT_FIRST_TEXT = """(() => {
  const t = document.querySelector('svg.path text');
  const r = document.createRange(); r.selectNodeContents(t);
  const s = window.getSelection(); s.removeAllRanges(); s.addRange(r);
  return [t.textContent, s.toString()];
})()"""


def _open(browser: Browser, tmp_path: Path, example: str) -> tuple[dict[str, Any], str]:
    from test_html import reports  # the reports made once for both modules

    doc, html = reports()[example]
    page = tmp_path / f"{example}.html"
    page.write_text(html, encoding="utf-8")
    browser.load(page.as_uri())
    return doc, page.as_uri()


def _examples() -> list[str]:
    from test_html import EXAMPLES

    return list(EXAMPLES)


@pytest.mark.parametrize("example", _examples())
def test_example_report_in_chromium(browser: Browser, tmp_path: Path, example: str) -> None:
    doc, url = _open(browser, tmp_path, example)
    assert browser.problems() == []
    assert browser.requests() == [url]  # nothing but the file itself
    sections = browser.js(PAGE_FACTS)
    items = doc["services"] + doc.get("direct", [])
    assert len(sections) == len(items)
    for it, sec in zip(items, sections, strict=True):
        assert str(it.get("service") or it.get("pod")) in sec["heading"]
        assert len(sec["paths"]) == len(it["paths"])
        for p, art in zip(it["paths"], sec["paths"], strict=True):
            assert p["title"] in art["title"]
            assert art["svgs"] == 1, p["title"]
            assert art["selectable"]
            assert not art["overflow"]
            lb_out = p["kind"] == "loadbalancer" and \
                (p.get("load_balancer") or {}).get("in_pool") is False
            for o in p["outcomes"]:
                if o["disposition"] == "delivered" and not lb_out:
                    # the predicted address is in the drawing, as text
                    assert f"sees {o['seen_source']}" in art["text"], (p["title"], o)
            # the hatched hop is the node explain names as the one that rewrote the source
            named = {r.split(":", 1)[0] for r in p["rewritten_by"]}
            drawn = {n for n in named if any(f"node {n}" in g or n.split(" (")[0] + " pod"
                                             in g for g in art["rewrites"])}
            assert drawn == named, (p["title"], named, art["rewrites"])
    text, selected = browser.js(SELECT_FIRST_TEXT)
    assert selected == text and text


def test_overview_sorts_and_prints(browser: Browser, tmp_path: Path) -> None:
    _open(browser, tmp_path, "ingress-proxy-protocol")
    first = "document.querySelector('table.overview tbody tr th').textContent"
    before = browser.js(first)
    browser.js("document.querySelectorAll('table.overview thead th button')[0].click()")
    browser.js("document.querySelectorAll('table.overview thead th button')[0].click()")
    after = browser.js(first)
    assert before != after  # descending by Service name
    assert browser.js("document.querySelector('table.overview thead th')"
                      ".getAttribute('aria-sort')") == "descending"
    assert browser.problems() == []
    browser.page("Emulation.setEmulatedMedia", {"media": "print"})
    try:
        assert browser.js("getComputedStyle(document.querySelector('nav')).display") == "none"
        widest = browser.js("Math.max(...[...document.querySelectorAll('svg.path')]"
                            ".map(s => s.getBoundingClientRect().right))")
        assert widest <= browser.js("document.documentElement.clientWidth") + 1
    finally:
        browser.page("Emulation.setEmulatedMedia", {"media": ""})
    pdf = base64.b64decode(browser.page("Page.printToPDF", {})["data"])
    assert pdf.startswith(b"%PDF") and len(pdf) > 10_000


@pytest.mark.parametrize("example", ["loadbalancer", "ingress-nginx"])
def test_screenshot(browser: Browser, tmp_path: Path, example: str) -> None:
    """Screenshots of two examples, kept for people to look at in bench/out/ (git-ignored;
    CI's artifacts) or ``$SOURCEIP_REPORT_SHOTS``."""
    _open(browser, tmp_path, example)
    shot = tmp_path / f"report-{example}.png"
    browser.screenshot(shot)
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 50_000
    keep = Path(os.environ.get("SOURCEIP_REPORT_SHOTS") or ROOT / "bench" / "out")
    keep.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, keep / shot.name)
