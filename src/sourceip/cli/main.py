"""Entry point: the ``sourceip`` group, lazy command loading, and error -> exit code mapping.

Exit codes: 0 success, 1 wrong input (message names file:line and field), 2 usage,
3 a lab precondition is missing. No traceback unless ``--debug``.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from sourceip import __version__
from sourceip.errors import SourceIPError

# command name -> "module:attribute"; modules are imported only when the command runs,
# so `sourceip --help` stays fast and one command's imports never slow another.
COMMANDS: dict[str, str] = {
    "examples": "sourceip.cli.examples:examples",
    "rules": "sourceip.cli.rules:rules",
    "trace": "sourceip.cli.trace:trace",
    "explain": "sourceip.cli.explain:explain",
    "lab": "sourceip.cli.lab:lab",
    "echo": "sourceip.cli.echo:echo",
    "request": "sourceip.cli.request:request",
    "snapshot": "sourceip.cli.snapshot:snapshot",
    "report": "sourceip.cli.report:report",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use; missing modules are hidden."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in COMMANDS if self._load(name) is not None)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._load(cmd_name)

    @staticmethod
    def _load(name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                return None
            raise
        command = getattr(module, attr)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(__version__, prog_name="sourceip")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Which source IP will my pod see, why, and how do I get the real client IP?"""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def main(argv: list[str] | None = None, *, prog_name: str = "sourceip") -> Any:
    """Run the CLI; returns (as process exit status) 0, 1 (bad input), 2 (usage) or 3 (lab)."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        rv = cli.main(args=args, prog_name=prog_name, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except SourceIPError as exc:
        if debug:
            raise
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        sys.exit(0)
    # With standalone_mode=False, ctx.exit(n) comes back as the return value.
    sys.exit(rv if isinstance(rv, int) else 0)


def kubectl_main(argv: list[str] | None = None) -> Any:
    """``kubectl sourceip ...`` (the ``kubectl-sourceip`` script kubectl runs as a plugin):
    without -f or --example the cluster is kubectl's current context, as for any kubectl
    command; kubectl's --kubeconfig, --context, -n, -A and --request-timeout apply."""
    from sourceip.cli import common

    common.LIVE_BY_DEFAULT = True
    return main(argv, prog_name="kubectl sourceip")


if __name__ == "__main__":
    main()
