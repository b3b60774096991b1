"""`CloudWrapper`: a callable whose pickle carries the cloudpickle of the function it wraps.

Upstream's client submits a function task's stdin as ``pickle.dumps((CloudWrapper(fn), args,
kwargs))``; unpickling calls ``hyperqueue.task.function.wrapper.CloudWrapper(None, pickled_fn,
cache, protocol)``. This class keeps that constructor and that pickle, so tasks pickled by
upstream's package run on workers that have this one (and the other way round). The cloudpickle
of a function is made once per wrapper (`cache`), so a job with many tasks of one function
pickles it once.
"""

from __future__ import annotations

import inspect
import logging

import cloudpickle


class CloudWrapper:
    """Wraps a callable so that cloudpickle is used to pickle it, caching the pickle."""

    def __init__(self, fn, pickled_fn=None, cache=True, protocol=cloudpickle.DEFAULT_PROTOCOL):
        if fn is None:
            if pickled_fn is None:
                raise ValueError("Pass at least one of `fn` and `pickled_fn`")
            fn = cloudpickle.loads(pickled_fn)
        if not callable(fn):
            raise TypeError(f"{fn!r} is not callable")
        if pickled_fn is not None and not cache:
            pickled_fn = None
        if inspect.isasyncgen(fn):
            raise TypeError("async functions not supported")
        self.fn = fn
        self.pickled_fn = pickled_fn
        self.cache = cache
        self.protocol = protocol
        self.__doc__ = f"CloudWrapper for {self.fn!r}. Original doc:\n\n{self.fn.__doc__}"
        if hasattr(self.fn, "__name__"):
            self.__name__ = self.fn.__name__
        try:
            self.__signature__ = inspect.signature(self.fn)
        except (ValueError, TypeError):
            pass

    def is_generator_function(self) -> bool:
        return inspect.isgeneratorfunction(self.fn)

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__}({self.fn!r})>"

    def _get_pickled_fn(self) -> bytes:
        if self.pickled_fn is not None:
            return self.pickled_fn
        pickled = cloudpickle.dumps(self.fn, protocol=self.protocol)
        if self.cache:
            self.pickled_fn = pickled
        return pickled

    def __call__(self, *args, **kwargs):
        logging.debug("Running function %s using args %s and kwargs %s", self.fn, args, kwargs)
        return self.fn(*args, **kwargs)

    def __reduce__(self):
        return (self.__class__, (None, self._get_pickled_fn(), self.cache, self.protocol))
