"""Load what ingest will need next in a background thread, while the caller goes on.

A patient's CTs (100–240 million voxels each at clinical size) are read mostly outside the GIL
(file reads and numpy conversions, :func:`LuDosimetryLib.ingest.series.load_ct`), while loading
the SPECT beds and PET frames is mostly Python. :class:`Prefetch` reads the CTs one after the
other in one thread, in the order the caller will ask for them; :meth:`Prefetch.take` returns a
result, or raises its error, where and when the caller asks for it, exactly as calling the
function there would. Nothing is prefetched when SimpleITK is limited to one thread (the cohort
runner shares the cores between patients that way).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

__all__ = ["Prefetch"]


class Prefetch:
    """Results of ``fn(*args)`` computed ahead in one background thread, taken by key.

    Parameters
    ----------
    fn : callable
        The loader (e.g. ``load_ct``).
    enabled : bool, optional
        Default: SimpleITK's global number of threads is above 1. When False, :meth:`take` calls
        ``fn`` in the caller's thread.

    Use as a context manager: leaving it cancels what was not started and waits for what runs.
    """

    def __init__(self, fn: Callable[..., Any], *, enabled: bool | None = None):
        if enabled is None:
            import SimpleITK as sitk

            enabled = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() > 1
        self._fn = fn
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ludosimetry-prefetch") if enabled else None
        self._futures: dict[Hashable, tuple[Future, tuple]] = {}

    def submit(self, key: Hashable, *args: Any) -> None:
        """Start ``fn(*args)`` in the background (once per key; nothing when disabled)."""
        if self._pool is not None and key not in self._futures:
            self._futures[key] = (self._pool.submit(self._fn, *args), args)

    def take(self, key: Hashable, *args: Any) -> Any:
        """The result of ``fn(*args)`` for ``key``: the prefetched one (waiting for it), else computed now.

        A result prefetched with other arguments (not the very same objects) is dropped and computed
        again with these. Raises whatever ``fn`` raised.
        """
        future, submitted = self._futures.pop(key, (None, ()))
        if future is None or len(submitted) != len(args) or any(a is not b for a, b in zip(submitted, args)):
            if future is not None and not future.cancel():
                future.exception()  # wait for it; its result or error is not this call's
            return self._fn(*args)
        return future.result()

    def close(self) -> None:
        """Cancel what has not started and wait for what runs (its result or error is dropped)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._futures.clear()

    def __enter__(self) -> Prefetch:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
