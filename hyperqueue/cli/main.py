"""Entry point of `hq`: the command tree (each noun's module imported only when it runs), the
click-free fast path, and the one place where errors become messages and exit codes.

Global options and the printer live in `context`; nothing imports this module but the `hq`
script."""

from __future__ import annotations

import os
import signal
import sys

from ..version import __version__
from .context import OUTPUT_MODES, G, GlobalOptionError, extract_globals, printer
from .flavour import choose, wants_help

# noun -> (module, attribute): imported only when that command runs (fast start-up).
COMMANDS = {
    "server": ("server", "server"),
    "worker": ("worker", "worker"),
    "submit": ("submit", "submit"),
    "job": ("job", "job"),
    "task": ("task", "task"),
    "alloc": ("alloc", "alloc"),
    "run": ("run", "run"),
    "journal": ("journal", "journal"),
    "output-log": ("output_log", "output_log"),
    "dashboard": ("dashboard", "dashboard"),
    "doc": ("misc", "doc"),
    "generate-completion": ("misc", "generate_completion"),
}


def build_cli():
    """The root click group (call after `flavour.choose`)."""
    from .flavour import click

    class LazyGroup(click.Group):
        def list_commands(self, ctx):
            return list(COMMANDS)

        def get_command(self, ctx, name):
            spec = COMMANDS.get(name)
            if spec is None:
                return None
            import importlib

            module = importlib.import_module(f"hyperqueue.cli.{spec[0]}")
            return getattr(module, spec[1])

    @click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(__version__, prog_name="hq", message="%(prog)s %(version)s")
    @click.option("--server-dir", "_sd", metavar="PATH",
                  help="Server directory [env: HQ_SERVER_DIR]", expose_value=False)
    @click.option("--output-mode", "_om", type=click.Choice(OUTPUT_MODES), expose_value=False,
                  help="How to print results [env: HQ_OUTPUT_MODE]")
    @click.option("--colors", "_co", type=click.Choice(["auto", "always", "never"]),
                  expose_value=False, help="Colour the output")
    @click.option("--debug", "_dbg", is_flag=True, expose_value=False, help="Debug logging")
    def cli():
        """HyperQueue: run many tasks on a cluster (or this machine) with little overhead."""

    return cli


def fast_command(argv: list[str]):
    """A click-free runner for the hottest read-only calls, or None.

    Loading click costs 25-30 ms, a large share of a short `hq job list`. When the arguments
    are exactly a plain form of such a command, it runs directly; everything else (help, typos,
    unusual spellings, invalid values) goes through click, which owns every usage message.
    `HQ_NO_FAST_PATH=1` turns the shortcut off (the tests compare both paths).
    """
    if os.environ.get("HQ_NO_FAST_PATH"):
        return None
    if argv == ["--version"]:
        return lambda: print(f"hq {__version__}")
    if len(argv) < 2:
        return None
    if argv[0] == "job" and argv[1] == "list":
        from .joblist import list_jobs, parse_fast

        kwargs = parse_fast(argv[2:])
        if kwargs is not None:
            return lambda: list_jobs(**kwargs)
    return None


def _fail(e: Exception) -> None:
    """Shows an error raised by a command and exits with its code (HqError: its own; other
    exceptions: 1, or a traceback with --debug)."""
    from ..errors import HqError

    if isinstance(e, HqError):
        printer().error(e.prefix + str(e))
        sys.exit(e.exit_code)
    if isinstance(e, KeyboardInterrupt):
        sys.exit(130)
    if G.debug:
        raise e
    printer().error(f"Error: {type(e).__name__}: {e}")
    sys.exit(1)


def _given_value(argv: list[str], opts: list[str]) -> str | None:
    """The text given for one of the option names `opts` in `argv` (the last one), or None."""
    value = None
    for i, a in enumerate(argv):
        if a == "--":
            break
        for o in opts:
            if a == o and i + 1 < len(argv):
                value = argv[i + 1]
            elif a.startswith(o + "="):
                value = a[len(o) + 1:]
    return value


def _int_error(text: str) -> str | None:
    """Rust's ParseIntError Display for a text that is no integer (None if it is one)."""
    if text == "":
        return "cannot parse integer from empty string"
    digits = text[1:] if text[0] in "+-" else text
    if not digits:
        return "invalid digit found in string"
    if not digits.isascii() or not digits.isdigit():
        return "invalid digit found in string"
    return None


#: Bounds of Rust's integer types: outside them, clap reports the parse error.
_INT_BOUNDS = {127, 255, 2**15 - 1, 2**16 - 1, 2**31 - 1, 2**32 - 1, 2**63 - 1, 2**64 - 1}


def _int_range_error(text: str, ptype) -> str | None:
    """Rust's ParseIntError Display for an integer outside an integer type's bounds."""
    lo, hi = getattr(ptype, "min", None), getattr(ptype, "max", None)
    value = int(text)
    if lo is not None and lo >= 0 and value < 0:
        return "invalid digit found in string"
    if hi is not None and value > hi and hi in _INT_BOUNDS:
        return "number too large to fit in target type"
    if lo is not None and value < lo and -lo - 1 in _INT_BOUNDS:
        return "number too small to fit in target type"
    return None


def clap_error_text(e, argv: list[str], usage: str | None = None) -> str:
    """A click usage error worded as clap (upstream's argument parser) words it:
    `error: invalid value '<v>' for '--opt <OPT>': <why>`, `error: unexpected argument '<a>'
    found`, ..., then the usage line (if any) and `For more information, try '--help'.`"""
    from .flavour import click

    param = getattr(e, "param", None)
    show_usage = True
    if isinstance(e, click.NoSuchOption):
        head = f"error: unexpected argument '{e.option_name}' found"
    elif isinstance(e, click.MissingParameter) and param is not None:
        head = ("error: the following required arguments were not provided:\n  "
                f"<{(param.name or '').upper()}>")
    elif isinstance(e, click.BadParameter):
        show_usage = False
        if param is not None and getattr(param, "opts", None) and param.param_type_name == "option":
            long = max(param.opts, key=len)
            metavar = long.lstrip("-").upper().replace("-", "_")  # clap's value name
            what = long if param.is_flag else f"{long} <{metavar}>"
            value = _given_value(argv, param.opts)
        elif param is not None:
            what, value = f"<{(param.name or '').upper()}>", None
            if isinstance(param.type, click.Choice):  # click's text names the value
                import re

                m = re.match(r"'(.*)' is not one of ", e.message, re.S)
                value = m.group(1) if m else None
        else:
            hint = str(e.param_hint or "").strip("'")
            value = _given_value(argv, [hint]) if hint.startswith("-") else None
            what = f"{hint} <{hint.lstrip('-').upper().replace('-', '_')}>" if value else hint
        ptype = getattr(param, "type", None)
        if value is not None and isinstance(ptype, click.Choice):
            # clap's possible-values form
            head = (f"error: invalid value '{value}' for '{what}'\n"
                    f"  [possible values: {', '.join(map(str, ptype.choices))}]")
        else:
            message = e.message
            if value is not None and isinstance(ptype, (click.types.IntParamType,
                                                        click.IntRange)):
                message = _int_error(value) or _int_range_error(value, ptype) or message
            head = (f"error: invalid value '{value}' for '{what}': {message}"
                    if value is not None else f"error: invalid value for '{what}': {message}")
    else:
        msg = e.format_message()
        head = "error: " + (msg[:1].lower() + msg[1:] if msg[:2] != msg[:2].upper() else msg)
    if usage is None and show_usage and getattr(e, "ctx", None) is not None:
        usage = e.ctx.get_usage()
    parts = [head]
    if show_usage and usage:
        parts.append(usage)
    parts.append("For more information, try '--help'.")
    return "\n\n".join(parts) + "\n"


_LONG_RUNNING = (("server", "start"), ("worker", "start"), ("dashboard",), ("run",))


def _is_long_running(argv: list[str]) -> bool:
    """`server start`, `worker start`, `dashboard` and `run` (which embeds a worker)."""
    words = [a for a in argv[:2] if not a.startswith("-")]
    return any(tuple(words[:len(cmd)]) == cmd for cmd in _LONG_RUNNING)


def main(argv: list[str] | None = None) -> None:
    if argv is None:
        argv = sys.argv[1:]
    choose(rich=wants_help(argv))
    try:
        argv = extract_globals(argv)
    except GlobalOptionError as e:
        from .flavour import click

        err = (click.BadParameter(str(e), param_hint=e.hint) if e.hint
               else click.UsageError(str(e)))
        err.show()
        sys.exit(2)
    if not _is_long_running(argv):
        # `hq ... | head` should end quietly. Not for processes that write to tasks' stdin
        # (a task that closes its stdin early must not kill its worker), as upstream.
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    fast = fast_command(argv)
    if fast is not None:
        try:
            fast()
        except (Exception, KeyboardInterrupt) as e:
            _fail(e)
        sys.exit(0)
    from .flavour import click

    try:
        rv = build_cli().main(args=argv, prog_name="hq", standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.UsageError as e:
        sys.stderr.write(clap_error_text(e, argv))
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except (Exception, KeyboardInterrupt) as e:
        _fail(e)
    sys.exit(rv if isinstance(rv, int) else 0)
