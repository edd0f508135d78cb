"""The HTML report of a dual-stack cluster (issue #12): every Service entry names its IP
family (overview column, heading, metadata); an IPv4-only report has no Family column."""

from __future__ import annotations

import re

from click.testing import CliRunner

from sourceip.cli.main import cli


def _report(example: str) -> str:
    r = CliRunner().invoke(cli, ["report", "--example", example, "-o", "-"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.stdout


def test_dual_stack_report_names_the_family() -> None:
    html = _report("dual-stack")
    assert '<th scope="col" data-sort="text">Family</th>' in html
    overview = html.split('<table class="sortable overview">', 1)[1].split("</table>", 1)[0]
    fams = re.findall(r"<td>(IPv[46])</td>", overview)
    assert fams.count("IPv4") == 3 and fams.count("IPv6") == 3  # server, -local, -v4 / -v6
    assert "Service default/server (IPv6)" in html and "Service default/server (IPv4)" in html
    assert "fd00:10:244:1::1" in html  # the bridge's IPv6 gateway, seen by the pod


def test_ipv4_only_report_has_no_family_column() -> None:
    html = _report("design-table")
    assert ">Family</th>" not in html and "(IPv4)" not in html
