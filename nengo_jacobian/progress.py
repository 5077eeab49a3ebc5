"""Progress bars in NengoDL's style, shown only for work that takes a while.

A bar appears once the work has run for `DELAY` seconds (so quick calls stay quiet),
only when standard output is a terminal, and never when the caller turned it off
(e.g. ``nengo_jacobian.Simulator(..., progress_bar=False)``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator

#: Seconds of work before a bar appears.
DELAY = 2.0  # also the default of Progress(delay=...)


def _terminal() -> bool:
    stream = sys.stdout
    return bool(getattr(stream, "isatty", None) and stream.isatty())


class Progress:
    """A NengoDL progress bar that appears only after `DELAY` seconds.

    Parameters
    ----------
    present : str
        What is being done (e.g. ``"Computing Jacobian"``).
    past : str, optional
        The finished message's verb (default ``present``).
    max_value : int, optional
        Number of steps, if known.
    enabled : bool or None
        False: never show. None or True: show if standard output is a terminal.
    delay : float
        Seconds before the bar appears.

    Examples
    --------
    >>> with Progress("Training", max_value=3, enabled=False) as bar:
    ...     for _ in range(3):
    ...         bar.step()
    >>> bar.value
    3
    """

    def __init__(
        self,
        present: str,
        past: str | None = None,
        max_value: int | None = None,
        enabled: bool | None = None,
        delay: float = DELAY,
    ):
        self.present, self.past, self.max_value = present, past, max_value
        self.show = enabled is not False and _terminal()
        self.delay = delay
        self.value = 0
        self._start = time.perf_counter()
        self._bar = None

    def __enter__(self) -> Progress:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def step(self, n: int = 1) -> None:
        """Advance by ``n`` steps (and show the bar if the work has taken a while)."""
        self.value += n
        if self._bar is None and self.show:
            if time.perf_counter() - self._start >= self.delay:
                from nengo_dl.utils import ProgressBar

                self._bar = ProgressBar(self.present, self.past, self.max_value)
                self._bar.start()
        if self._bar is not None:
            self._bar.value = (
                self.value
                if self.max_value is None
                else min(self.value, self.max_value)
            )

    def close(self) -> None:
        """Finish the bar if it is showing."""
        if self._bar is not None:
            self._bar.finish()
            self._bar = None
            sys.stdout.flush()


def track(
    iterable: Iterable,
    present: str,
    total: int | None = None,
    enabled: bool | None = None,
) -> Iterator:
    """Iterate with a `Progress` bar (e.g. around a training loop).

    Parameters
    ----------
    iterable : iterable
        What to iterate over.
    present : str
        What is being done, e.g. ``"Training"``.
    total : int, optional
        Number of items (default ``len(iterable)`` if it has one).
    enabled : bool or None
        As for `Progress`.

    Examples
    --------
    >>> from nengo_jacobian.progress import track
    >>> [i for i in track(range(3), "Counting", enabled=False)]
    [0, 1, 2]
    """
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    with Progress(present, max_value=total, enabled=enabled) as bar:
        for item in iterable:
            yield item
            bar.step()
