"""``sourceip examples``: the list, JSON output, --show."""

from __future__ import annotations

import json

from click.testing import CliRunner

from sourceip.cli.main import cli, main
from sourceip.sources import list_examples, load_cluster


def run(args: list[str]) -> tuple[int, str, str]:
    runner = CliRunner()
    code = 0
    with runner.isolation() as (out, err, _):
        try:
            main(args)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue().decode(), err.getvalue().decode()


def test_lists_every_example_with_its_description() -> None:
    code, out, _ = run(["examples"])
    assert code == 0
    for name, desc in list_examples():
        assert any(line.startswith(name + " ") and line.endswith(desc)
                   for line in out.splitlines())


def test_json_output() -> None:
    code, out, _ = run(["examples", "-o", "json"])
    rows = json.loads(out)
    assert code == 0
    assert [r["name"] for r in rows] == [n for n, _ in list_examples()]
    seed = next(r for r in rows if r["name"] == "seed")
    assert list(seed) == ["name", "description", "nodes", "pods", "services"]
    assert (seed["nodes"], seed["pods"], seed["services"]) == (2, 3, 1)


def test_show_prints_loadable_yaml(tmp_path) -> None:
    code, out, _ = run(["examples", "--show", "seed"])
    assert code == 0 and out.startswith("# ")
    p = tmp_path / "seed.yaml"
    p.write_text(out)
    assert load_cluster([str(p)]).service("nginx").ports[0].node_port == 30080


def test_show_unknown_is_exit_1() -> None:
    code, out, err = run(["examples", "--show", "nope"])
    assert (code, out) == (1, "")
    assert err.startswith("error: no example named 'nope'")


def test_registered_in_the_group() -> None:
    assert "examples" in cli.list_commands(None)  # type: ignore[arg-type]
