"""Helpers shared by the command modules: parameter types, option checks, errors of the client
library as click errors, and `trio.run` for the long-running commands."""

from __future__ import annotations

from .flavour import click

TASK_STATES = ("waiting", "running", "finished", "failed", "canceled", "aborted")


class DurationType(click.ParamType):
    name = "DURATION"

    def __init__(self, allow_zero: bool = True):
        self.allow_zero = allow_zero

    def convert(self, value, param, ctx):
        """Text as `parse_duration` reads it, or a number of seconds; either way finite, not
        negative and at most 10 years (core.limits.MAX_DURATION); not zero unless
        `allow_zero`."""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            from ..core.limits import check_duration

            try:
                return check_duration(value, allow_zero=self.allow_zero)
            except ValueError as e:
                self.fail(str(e), param, ctx)
        from ..common.durations import parse_duration

        try:
            seconds = parse_duration(value)
        except ValueError as e:
            self.fail(str(e), param, ctx)
        if seconds == 0 and not self.allow_zero:
            self.fail(f"Invalid duration '{value}': must be positive", param, ctx)
        return seconds


class FilePathType(click.Path):
    """A file path that must not be empty (`--journal ""` would otherwise mean no journal)."""

    def __init__(self, **kw):
        super().__init__(dir_okay=False, **kw)

    def convert(self, value, param, ctx):
        if isinstance(value, str) and not value:
            self.fail("the path is empty", param, ctx)
        return super().convert(value, param, ctx)


class SelectorType(click.ParamType):
    name = "SELECTOR"

    def __init__(self, allow_all=True, allow_last=True):
        self.allow_all = allow_all
        self.allow_last = allow_last

    def convert(self, value, param, ctx):
        from ..common.selectors import Selector, parse_selector

        if isinstance(value, Selector):
            return value
        try:
            return parse_selector(value, allow_all=self.allow_all, allow_last=self.allow_last)
        except ValueError as e:
            self.fail(str(e), param, ctx)


class RangesType(click.ParamType):
    name = "IDS"

    def convert(self, value, param, ctx):
        from ..core.ranges import IntRanges

        if isinstance(value, IntRanges):
            return value
        try:
            return IntRanges.parse(value)
        except ValueError as e:
            self.fail(str(e), param, ctx)


#: Ids (jobs, tasks, workers, queues) and counts are u32 upstream: a larger or negative number is
#: clap's value error (exit 2), never sent to the server.
ID = click.IntRange(0, 2**32 - 1)
COUNT = ID

DURATION = DurationType()
POSITIVE_DURATION = DurationType(allow_zero=False)  # e.g. a heartbeat period
SELECTOR = SelectorType()
RANGES = RangesType()


def states_option(value, allowed, hint):
    """`--filter a,b` as a list of states (None if not given); a bad state is a usage error."""
    from .joblist import parse_states

    try:
        return parse_states(value, allowed)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint=hint)


#: SpecError fields whose option is not simply `--<field>`.
SPEC_OPTIONS = {"resources": "--resource", "crash_limit": "--crash-limit",
                "time_limit": "--time-limit", "max_fails": "--max-fails"}


def click_error(e):
    """A client-library SpecError as click shows it: a bad option value (exit 2, naming the
    option) or, for a problem of the whole command, a usage error."""
    if e.field is None:
        return click.UsageError(e.message)
    option = SPEC_OPTIONS.get(e.field, "--" + e.field.replace("_", "-"))
    return click.BadParameter(e.message, param_hint=f"'{option}'")


def trio_run(afn, *args):
    """`trio.run` that surfaces a user-facing error from inside nurseries as itself."""
    import trio

    from ..errors import HqError

    try:
        return trio.run(afn, *args)
    except BaseExceptionGroup as eg:
        leaf = first_leaf(eg, (HqError, KeyboardInterrupt, OSError))
        if leaf is not None:
            raise leaf from None
        raise


def first_leaf(eg, types):
    """The first exception of one of `types` in a (nested) exception group, or None."""
    for e in eg.exceptions:
        if isinstance(e, BaseExceptionGroup):
            found = first_leaf(e, types)
            if found is not None:
                return found
        elif isinstance(e, types):
            return e
    return None


def missing_text(item, singular: str, plural: str, rest: str) -> str:
    """`<Singular> 5<rest>` for one id, `<Plural> 5-9<rest>` for a range text."""
    return f"{singular if isinstance(item, int) else plural} {item}{rest}"
