"""report/term.py: width and colour detection, tables that fit, folded tables, wrapping, and
the progress bar that stays silent off a terminal."""

from __future__ import annotations

import io
import re

import pytest

from sourceip.report import term
from sourceip.report.term import PLAIN, Term, column_widths, detect, table, wrap

ANSI = re.compile(r"\x1b\[[0-9;]*m")


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_width_is_columns_else_100_when_piped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    assert detect(io.StringIO()) == Term(width=100, color=False)
    monkeypatch.setenv("COLUMNS", "72")
    assert detect(io.StringIO()).width == 72
    monkeypatch.setenv("COLUMNS", "garbage")
    assert detect(io.StringIO()).width == 100


def test_colour_only_on_a_tty_and_never_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert detect(FakeTTY()).color is True
    assert detect(io.StringIO()).color is False
    monkeypatch.setenv("NO_COLOR", "1")
    assert detect(FakeTTY()).color is False
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("TERM", "dumb")
    assert detect(FakeTTY()).color is False


def test_styles_render_ansi_only_with_colour() -> None:
    assert PLAIN.style("NO", "bad") == "NO"
    coloured = Term(width=80, color=True).style("NO", "bad")
    assert coloured != "NO" and ANSI.sub("", coloured) == "NO"


def test_narrow_columns_keep_their_width_wide_ones_share_the_rest() -> None:
    assert column_widths([10, 50, 50], 200) == [10, 50, 50]
    assert column_widths([12, 90, 85], 94) == [12, 41, 41]
    assert sum(column_widths([5, 300, 7, 80], 90)) <= 90


def test_a_table_fits_and_keeps_every_word() -> None:
    long = "external -> Ingress default/nginx (example.test/) via ingress-nginx, NodePort on node2"
    rows = [[long, "192.168.2.1 (node2's bridge cni0) from X-Real-IP", "NO"]]
    lines = table(["PATH", "POD SEES", "REAL CLIENT?"], rows, width=60, indent=2)
    assert max(len(ln) for ln in lines) <= 60
    assert all(ln.startswith("  ") for ln in lines)
    words = " ".join(" ".join(ln.split()) for ln in lines[1:]).split()
    for w in (long + " 192.168.2.1 (node2's bridge cni0) from X-Real-IP NO").split():
        assert w in words


def test_a_narrow_terminal_folds_the_table_into_blocks() -> None:
    rows = [["pod on node1 (a node with an endpoint) -> ClusterIP", "192.168.1.20 (the client)",
             "yes"], ["external -> NodePort on node2", "10.0.0.12 (node2's address)", "NO"]]
    lines = table(["PATH", "POD SEES", "REAL CLIENT?"], rows, width=40)
    assert max(len(ln) for ln in lines) <= 40
    assert lines[0] == "PATH: pod on node1 (a node with an"
    assert "  REAL CLIENT?: yes" in lines and "  REAL CLIENT?: NO" in lines
    assert "" in lines  # a blank line between blocks


def test_wrap_hangs_continuation_lines_and_folds_long_words() -> None:
    assert wrap("    short", 100) == ["    short"]
    lines = wrap("    rewritten on node1: " + "x" * 150, 60)
    assert lines[0].startswith("    rewritten on node1:")
    assert all(ln.startswith("      ") for ln in lines[1:])
    assert "".join(ln.strip() for ln in lines).count("x") == 150
    assert max(len(ln) for ln in lines) <= 60


def test_progress_draws_nothing_off_a_terminal(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(term, "PROGRESS_DELAY", 0.0)
    with term.progress("work", total=3) as bar:  # stderr is captured: not a TTY
        assert bar.enabled is False
        for _ in range(3):
            bar.advance()
    assert bar.completed == 3
    assert capsys.readouterr().err == ""


def test_progress_appears_on_a_terminal_after_the_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import time

    fake = FakeTTY()
    monkeypatch.setattr(sys, "stderr", fake)
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setattr(term, "PROGRESS_DELAY", 0.05)
    with term.progress("explaining Services", total=2) as bar:
        assert bar.enabled is True
        bar.advance()
        time.sleep(0.3)
        bar.advance()
    assert "explaining Services" in fake.getvalue()
    with term.progress("never shown", total=2, enabled=False) as bar:
        time.sleep(0.1)
    assert "never shown" not in fake.getvalue()
