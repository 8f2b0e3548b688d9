"""The one batching engine: every method that sends many samples through a model walks them with :func:`batches`.

* **Chunks of ``batch_size``.** The work is ``n_inputs × per_input`` (input, sample) pairs in (input, sample)
  order, cut into consecutive chunks of at most ``batch_size`` pairs; a chunk says which input owns each of its
  rows (``owners``) and which sample of that input the row is (``members``).
* **Preparation of the next chunk on a helper thread.** ``prepare(chunk)`` (host work: drawing noise or masks,
  building NumPy samples) runs for chunk k+1 on a pool of one thread while the caller's model pass runs chunk
  k. At most two chunks' prepared data are alive at once. Framework operations stay on the calling thread: a
  second thread running them would start a second OpenMP team that competes with the model pass for the cores.
* **One progress meter.** A tqdm bar on a terminal; wherever progress is on (``progress`` ``None`` or ``True``)
  a line ``desc 120/600 (20.0%), 41.3 samples/s, ETA 0:00:12`` is also logged (logger ``deepinterpret``, level
  INFO) every few seconds, so that a job without a terminal (a batch system, a notebook's log, Ray) still
  reports. ``progress=False`` turns both off.
* **Per-input accumulation.** :class:`PerInputSum` reduces each chunk's rows into one slot per input as the
  chunk completes, so nothing grows with the number of samples, steps, windows or channels.

Nothing here imports torch or paddle: arrays are handled through the array namespace ``xp`` a caller passes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .validation import check_batch_size

logger = logging.getLogger("deepinterpret")

__all__ = [
    "Chunk",
    "PerInputSum",
    "Progress",
    "batches",
    "chunks",
    "map_batches",
    "sliced",
]


def chunks(total: int, batch_size: int) -> Iterator[slice]:
    """Consecutive slices of at most ``batch_size`` over ``range(total)`` (the slicing under :func:`batches`)."""
    batch_size = check_batch_size(batch_size)
    for start in range(0, total, batch_size):
        yield slice(start, min(start + batch_size, total))


def _duration(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))


class Progress:
    """Done out of total, the rate and the time left: a tqdm bar on a terminal, and a log line every ``interval``
    seconds (``logger``, level INFO) for runs without one.

    ``enabled``: ``None`` (the bar only on a terminal, the log lines always), ``True`` (the bar always) or
    ``False`` (nothing). ``initial`` units were done by an earlier run: they count as done but not in the rate.
    """

    def __init__(
        self,
        total: int | None,
        desc: str = "",
        unit: str = "sample",
        enabled: bool | None = None,
        initial: int = 0,
        interval: float = 5.0,
        log: logging.Logger = logger,
        leave: bool = False,
    ):
        self.total, self.desc, self.unit = total, desc, unit
        self.done = self.resumed = initial
        self.enabled = enabled is not False
        self.interval, self.log = interval, log
        self.start = self._last_log = time.perf_counter()
        disable = None if enabled is None else not enabled
        self._bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=disable, leave=leave)

    @property
    def rate(self) -> float:
        elapsed = time.perf_counter() - self.start
        return (self.done - self.resumed) / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        """``desc 120/600 (20.0%), 41.3 samples/s, ETA 0:00:12``."""
        rate, units = self.rate, f"{self.unit}s/s"
        if self.total:
            text = f"{self.desc} {self.done}/{self.total} ({100.0 * self.done / self.total:.1f}%), {rate:.1f} {units}"
            left = self.total - self.done
            return text + (f", ETA {_duration(left / rate)}" if rate > 0 and left > 0 else "")
        return f"{self.desc} {self.done}, {rate:.1f} {units}"

    def update(self, count: int) -> None:
        self.done += count
        self._bar.update(count)
        now = time.perf_counter()
        if self.enabled and now - self._last_log >= self.interval:
            self._last_log = now
            self.log.info(self.line())

    def close(self, summary: bool = False) -> None:
        """Closes the bar; ``summary`` also logs the final line with the time taken."""
        self._bar.close()
        if self.enabled and summary:
            self.log.info(self.line() + f"; finished in {_duration(time.perf_counter() - self.start)}")

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@dataclass
class Chunk:
    """One chunk of the work: the flat pair positions ``part``, the input owning each row (``owners``, sorted),
    the sample of that input each row is (``members``), and what ``prepare`` made for it (``None`` without).
    The engine drops ``prepared`` when the caller asks for the next chunk, before the helper thread builds the
    one after it, so at most two chunks' data are alive (keep no other reference to it across iterations)."""

    index: int
    part: slice
    owners: np.ndarray
    members: np.ndarray
    prepared: Any = None

    def __len__(self) -> int:
        return self.part.stop - self.part.start

    def runs(self) -> Iterator[tuple[int, slice]]:
        """``(input, rows of this chunk it owns)`` for each input in the chunk: the rows are one contiguous run."""
        bounds = np.flatnonzero(np.diff(self.owners)) + 1
        starts, stops = np.concatenate([[0], bounds]), np.concatenate([bounds, [len(self.owners)]])
        for lo, hi in zip(starts.tolist(), stops.tolist(), strict=True):
            yield int(self.owners[lo]), slice(lo, hi)


def _chunk(index: int, part: slice, per_input: int, prepared: Any = None) -> Chunk:
    flat = np.arange(part.start, part.stop)
    return Chunk(index, part, flat // per_input, flat % per_input, prepared)


def batches(
    n_inputs: int,
    batch_size: int,
    per_input: int = 1,
    prepare: Callable[[Chunk], Any] | None = None,
    progress: bool | None = None,
    desc: str = "",
    unit: str = "sample",
) -> Iterator[Chunk]:
    """The chunks of ``n_inputs × per_input`` (input, sample) pairs, at most ``batch_size`` pairs each.

    ``prepare(chunk)`` (NumPy/host work only) is run for chunk k+1 on a helper thread while the caller works on
    chunk k; its result is the yielded chunk's ``prepared``. The progress meter advances when the caller asks
    for the next chunk, i.e. when a chunk's work is done. Use it as ``for chunk in batches(...)``.
    """
    batch_size = check_batch_size(batch_size)
    if isinstance(per_input, bool) or not isinstance(per_input, (int, np.integer)) or per_input < 0:
        raise ValueError(f"per_input must be an integer >= 0; got {per_input!r}.")
    parts = list(chunks(n_inputs * per_input, batch_size))
    meter = Progress(n_inputs * per_input, desc, unit, progress)
    try:
        if prepare is None:
            for index, part in enumerate(parts):
                yield _chunk(index, part, per_input)
                meter.update(part.stop - part.start)
            return
        with ThreadPoolExecutor(max_workers=1) as helper:

            def submit(index: int):
                if index >= len(parts):
                    return None
                # The result comes back through a box the caller empties: a finished future still referenced
                # by the helper thread would otherwise keep a third chunk alive.
                box: list = []
                chunk = _chunk(index, parts[index], per_input)
                return helper.submit(lambda: box.append(prepare(chunk))), box

            pending = submit(0)
            for index, part in enumerate(parts):
                future, box = pending
                future.result()
                chunk = _chunk(index, part, per_input, box.pop())
                pending = submit(index + 1)  # built while the caller works on this chunk
                yield chunk
                meter.update(len(chunk))
                chunk.prepared = None  # the caller is done with it: free it before the next one is built
    finally:
        meter.close()


def sliced(source: Any) -> Callable[[Chunk], Any]:
    """A ``prepare`` that reads each chunk's rows of ``source`` (an array, or a lazy source indexed by slices)."""
    return lambda chunk: source[chunk.part]


def map_batches(
    n_inputs: int, batch_size: int, run: Callable[[slice], Any], progress: bool | None = False, desc: str = ""
) -> list[Any]:
    """``[run(rows) for each chunk of rows]``: the one-sample-per-input case of :func:`batches` (one model pass per
    chunk of inputs, e.g. a gradient or a forward), results in input order for the caller to concatenate."""
    return [run(chunk.part) for chunk in batches(n_inputs, batch_size, progress=progress, desc=desc)]


def joined(xp: Any, parts: Any) -> Any:
    """The chunks' results in input order as one array: ``xp.concat(parts)``, or the only part itself (no copy)
    when one chunk held every input."""
    parts = list(parts)
    return parts[0] if len(parts) == 1 else xp.concat(parts, axis=0)


class PerInputSum:
    """``total[i] = Σ rows owned by input i``, reduced as each chunk completes: memory is one slot per input.

    ``xp`` is the array namespace of the rows (NumPy, or torch through array-api-compat); the totals are
    allocated on the first rows' device and dtype, with the rows' trailing shape."""

    def __init__(self, xp: Any, n_inputs: int):
        self.xp, self.n_inputs, self.total = xp, n_inputs, None

    def add(self, chunk: Chunk, rows: Any) -> None:
        if self.total is None:
            from array_api_compat import device

            shape = (self.n_inputs, *rows.shape[1:])
            self.total = self.xp.zeros(shape, dtype=rows.dtype, device=device(rows))
        for owner, run in chunk.runs():
            self.total[owner] += self.xp.sum(rows[run], axis=0)
