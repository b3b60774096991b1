"""Helpers shared by the command modules: parameter types and the client connection."""

from __future__ import annotations

from ._click import click
from .main import server_root


class DurationType(click.ParamType):
    name = "DURATION"

    def convert(self, value, param, ctx):
        """Text as `parse_duration` reads it, or a number of seconds; either way finite, not
        negative and at most 10 years (core.limits.MAX_DURATION)."""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            from ..core.limits import check_duration

            try:
                return check_duration(value, allow_zero=True)
            except ValueError as e:
                self.fail(str(e), param, ctx)
        from ..common.durations import parse_duration

        try:
            return parse_duration(value)
        except ValueError as e:
            self.fail(str(e), param, ctx)


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


DURATION = DurationType()
SELECTOR = SelectorType()
RANGES = RangesType()


def connect():
    """A blocking client for the current server directory (raises HqError if none)."""
    from ..client.blocking import BlockingClient

    return BlockingClient(server_root())


def trio_run(afn, *args):
    """`trio.run` that surfaces a user-facing error from inside nurseries as itself."""
    import trio

    from ..errors import HqError

    try:
        return trio.run(afn, *args)
    except BaseExceptionGroup as eg:
        leaf = _first_leaf(eg, (HqError, KeyboardInterrupt, OSError))
        if leaf is not None:
            raise leaf from None
        raise


def _first_leaf(eg, types):
    for e in eg.exceptions:
        if isinstance(e, BaseExceptionGroup):
            found = _first_leaf(e, types)
            if found is not None:
                return found
        elif isinstance(e, types):
            return e
    return None
