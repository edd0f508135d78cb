"""The terminal: how wide text output may be, whether it is coloured, tables and lines laid
out to that width, and a progress bar on stderr for long work.

- Width: ``COLUMNS`` if set, else the terminal's when the stream is a TTY, else
  ``DEFAULT_WIDTH`` (100), so that piped output and golden tests do not depend on who runs
  them.
- Colour: only on a TTY, never with ``NO_COLOR`` set (https://no-color.org) or ``TERM=dumb``;
  piped output carries no ANSI codes. Styles are rendered by ``rich``.
- Tables: columns as wide as their content when the row fits; otherwise the narrow columns
  keep their width and the wide ones share the rest (max-min fair), their cells wrapped at
  words (long words folded). Below ``FOLD_BELOW`` columns per wide column the table is
  folded: one block per row, ``HEADER: value`` lines.
- Progress: ``progress(...)`` shows a rich progress bar on stderr only when stderr is a TTY,
  and only once the work has taken more than a second.

The layout is computed here rather than by ``rich.table.Table``: rich's tables cost ~6 ms
each (measured: 200 tables of 8 rows, 1.26 s), which is 60 s for the 10,000 Services of a
cluster at Kubernetes' limits; this layout costs a few tens of microseconds per row. rich
renders the styles and the progress bar, and is imported only when colour or progress is on.
"""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any

DEFAULT_WIDTH = 100
MIN_WIDTH = 40
FOLD_BELOW = 18  # a wide column narrower than this folds the table into blocks
GAP = "  "
PROGRESS_DELAY = 1.0  # seconds of work before a progress bar appears

# style names -> rich style strings
STYLES = {
    "header": "bold",
    "title": "bold",
    "good": "green",
    "bad": "bold red",
    "warn": "yellow",
    "dim": "dim",
}


def _env_width() -> int | None:
    try:
        n = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        return None
    return n if n > 0 else None


def _no_color() -> bool:
    return bool(os.environ.get("NO_COLOR")) or os.environ.get("TERM") == "dumb"


def _isatty(stream: IO[Any] | None) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError):
        return False


@dataclass(frozen=True, slots=True, kw_only=True)
class Term:
    """Where text goes: its width and whether it may carry colour."""

    width: int = DEFAULT_WIDTH
    color: bool = False
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def style(self, text: str, name: str | None) -> str:
        """``text`` in the style ``name`` (a key of ``STYLES``) when colour is on."""
        if not self.color or not name or not text:
            return text
        st = self._cache.get(name)
        if st is None:
            from rich.color import ColorSystem
            from rich.style import Style

            parsed = Style.parse(STYLES.get(name, name))
            st = self._cache[name] = (parsed, ColorSystem.STANDARD)
        rendered: str = st[0].render(text, color_system=st[1])
        return rendered


PLAIN = Term()


def detect(stream: IO[Any] | None = None) -> Term:
    """The ``Term`` for ``stream`` (default: stdout)."""
    stream = sys.stdout if stream is None else stream
    tty = _isatty(stream)
    width = _env_width()
    if width is None:
        width = shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns if tty else DEFAULT_WIDTH
    return Term(width=max(MIN_WIDTH, width), color=tty and not _no_color())


# ------------------------------------------------------------------------------ lines


def wrap(line: str, width: int | None, *, hang: int = 2) -> list[str]:
    """``line`` wrapped at ``width``: continuation lines are indented ``hang`` more than the
    line's own leading spaces. Nothing is dropped; words longer than a line are folded."""
    if width is None or len(line) <= width:
        return [line]
    lead = len(line) - len(line.lstrip(" "))
    indent = " " * lead
    rest = " " * min(lead + hang, max(0, width - 20))
    return textwrap.wrap(line.strip(" "), width, initial_indent=indent, subsequent_indent=rest,
                         break_long_words=True, break_on_hyphens=False) or [line]


def wrap_lines(lines: Sequence[str], width: int | None, *, hang: int = 2) -> list[str]:
    out: list[str] = []
    for ln in lines:
        for part in ln.split("\n"):
            out.extend(wrap(part, width, hang=hang))
    return out


def _cell_lines(text: str, width: int) -> list[str]:
    out: list[str] = []
    for part in text.split("\n"):
        if len(part) <= width:
            out.append(part)
        else:
            out.extend(textwrap.wrap(part, width, break_long_words=True,
                                     break_on_hyphens=False) or [""])
    return out


def column_widths(natural: Sequence[int], available: int,
                  minimum: Sequence[int] | None = None) -> list[int]:
    """Max-min fair widths: every column first gets its ``minimum`` (its longest word, so that
    words are not cut when there is room), then columns that fit in an equal share of the rest
    keep their natural width and the others share what is left equally."""
    n = len(natural)
    if sum(natural) <= available:
        return list(natural)
    mins = [min(m, nat) for m, nat in zip(minimum or [1] * n, natural, strict=True)]
    if sum(mins) > available:
        mins = [1] * n
    widths = list(mins)
    left, cols = available, n
    for i in sorted(range(n), key=lambda i: natural[i]):
        widths[i] = max(mins[i], min(natural[i], left // cols))
        left -= widths[i]
        cols -= 1
    while sum(widths) > available:  # minimums taken by the narrow ones: trim the widest
        widest = max(range(n), key=lambda i: widths[i] - mins[i])
        if widths[widest] <= 1:
            break
        widths[widest] -= 1
    return widths


MAX_WORD = 30  # a longer word may be cut to let the other columns breathe


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, term: Term = PLAIN,
          indent: int = 0, width: int | None = None,
          cell_style: Callable[[int, str], str | None] | None = None) -> list[str]:
    """``rows`` under ``headers`` laid out in ``width`` (default: the term's) columns, each
    line prefixed by ``indent`` spaces; a cell may hold several lines (``\\n``).
    ``cell_style(column, text)`` names the style of a cell (colour only)."""
    width = term.width if width is None else width
    n = len(headers)
    natural = [max([len(h)] + [len(ln) for r in rows for ln in r[i].split("\n")])
               for i, h in enumerate(headers)]
    available = width - indent - len(GAP) * (n - 1)
    longest = [min(MAX_WORD, max([len(w) for r in rows for w in r[i].split()] or [1]))
               for i in range(n)]
    widths = column_widths(natural, available, longest)
    pad = " " * indent
    if _too_narrow(widths, natural):  # whole words left no room: cut long words instead
        widths = column_widths(natural, available)
    if _too_narrow(widths, natural):
        return _folded(headers, rows, term=term, indent=indent, width=width,
                       cell_style=cell_style)
    out = [pad + GAP.join(term.style(h.ljust(w), "header") if i < n - 1
                          else term.style(h, "header")
                          for i, (h, w) in enumerate(zip(headers, widths, strict=True)))
           .rstrip()]
    for r in rows:
        cells = [_cell_lines(c, w) for c, w in zip(r, widths, strict=True)]
        height = max(len(c) for c in cells)
        styles = [cell_style(i, c) if cell_style else None for i, c in enumerate(r)]
        for k in range(height):
            parts = []
            for i, (c, w) in enumerate(zip(cells, widths, strict=True)):
                text = c[k] if k < len(c) else ""
                parts.append(term.style(text, styles[i]) + " " * (w - len(text)))
            out.append((pad + GAP.join(parts)).rstrip())
    return out


def _too_narrow(widths: Sequence[int], natural: Sequence[int]) -> bool:
    squeezed = [w for w, nat in zip(widths, natural, strict=True) if w < nat]
    return bool(squeezed) and min(squeezed) < FOLD_BELOW


def _folded(headers: Sequence[str], rows: Sequence[Sequence[str]], *, term: Term, indent: int,
            width: int, cell_style: Callable[[int, str], str | None] | None) -> list[str]:
    """A table too wide for the terminal: one block per row, the first column as its title,
    then ``HEADER: value`` lines (wrapped), a blank line between blocks."""
    pad = " " * indent
    out: list[str] = []
    for k, r in enumerate(rows):
        if k:
            out.append("")
        for i, (h, c) in enumerate(zip(headers, r, strict=True)):
            style = cell_style(i, c) if cell_style else None
            lead = pad if i == 0 else pad + "  "
            text = f"{lead}{h}: {c}" if h else f"{lead}{c}"
            lines = wrap_lines([text], width, hang=4 if i else 2)
            if style and term.color:
                lines = [term.style(ln, style) for ln in lines]
            out.extend(lines)
    return out


# ------------------------------------------------------------------------------ progress


class Progress:
    """Progress of some work, drawn on stderr by rich once it has taken ``PROGRESS_DELAY``
    seconds, and only when enabled (see ``progress``). ``advance()``/``update()`` are cheap
    when nothing is drawn."""

    def __init__(self, description: str, total: int | None, enabled: bool) -> None:
        self.description = description
        self.total = total
        self.completed = 0
        self.enabled = enabled
        self._lock = threading.Lock()
        self._bar: Any = None
        self._task: Any = None
        self._timer: threading.Timer | None = None

    def _start(self) -> None:
        with self._lock:
            if not self.enabled or self._bar is not None:
                return
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )
            from rich.progress import Progress as RichProgress

            columns: list[Any] = [SpinnerColumn(), TextColumn("{task.description}"),
                                  BarColumn()]
            if self.total is not None:
                columns.append(MofNCompleteColumn())
            columns.append(TimeElapsedColumn())
            bar = RichProgress(*columns, console=Console(file=sys.stderr), transient=True)
            bar.start()
            self._task = bar.add_task(self.description, total=self.total,
                                      completed=self.completed)
            self._bar = bar

    def advance(self, n: int = 1) -> None:
        self.completed += n
        if self._bar is not None:
            self._bar.update(self._task, completed=self.completed)

    def update(self, description: str | None = None, *, total: int | None = None) -> None:
        if description is not None:
            self.description = description
        if total is not None:
            self.total = total
        if self._bar is not None:
            self._bar.update(self._task, description=self.description, total=self.total)

    def __enter__(self) -> Progress:
        if self.enabled:
            self._timer = threading.Timer(PROGRESS_DELAY, self._start)
            self._timer.daemon = True
            self._timer.start()
        return self

    def stop(self) -> None:
        """Take the bar off the screen for good (before printing the results)."""
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:
            self.enabled = False
            if self._bar is not None:
                self._bar.stop()
                self._bar = None

    def __exit__(self, *exc: object) -> None:
        self.stop()


def progress_enabled(stream: IO[Any] | None = None) -> bool:
    """A progress bar is drawn only on a terminal (stderr by default)."""
    stream = sys.stderr if stream is None else stream
    return _isatty(stream) and os.environ.get("TERM") != "dumb"


@contextmanager
def progress(description: str, total: int | None = None, *,
             enabled: bool | None = None) -> Iterator[Progress]:
    """``with progress("explaining", total=n) as bar: ... bar.advance()`` — a bar on stderr
    after a second of work when stderr is a TTY (pass ``enabled=False`` for machine-readable
    output: nothing is drawn then)."""
    on = progress_enabled() if enabled is None else enabled and progress_enabled()
    with Progress(description, total, on) as bar:
        yield bar
