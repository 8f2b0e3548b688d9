"""Progress of a whole dataset job: rows done out of the total, rows per second and the time left. On a terminal
it is a tqdm bar; it is also logged (logger ``deepinterpret.batch``, level INFO) every ``interval`` seconds, so
that it shows in the logs of a batch system or a Ray cluster where there is no terminal."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from tqdm.auto import tqdm

logger = logging.getLogger("deepinterpret.batch")


def _duration(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))


class JobProgress:
    """Counts rows (one per input and method). ``resumed`` rows were done by an earlier run: they count as done
    but not in the rate."""

    def __init__(self, total: int | None, resumed: int = 0, bar: bool | None = None, interval: float = 5.0):
        self.total = total
        self.done = resumed
        self.resumed = resumed
        self.start = time.perf_counter()
        self.interval = interval
        self._last_log = self.start
        disable = None if bar is None else not bar
        self._bar = tqdm(total=total, initial=resumed, desc="rows", unit="row", disable=disable)

    @property
    def rate(self) -> float:
        elapsed = time.perf_counter() - self.start
        return (self.done - self.resumed) / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        """``rows 120/600 (20.0%), 41.3 rows/s, ETA 0:00:12``."""
        rate = self.rate
        if self.total:
            text = f"rows {self.done}/{self.total} ({100.0 * self.done / self.total:.1f}%), {rate:.1f} rows/s"
            left = self.total - self.done
            return text + (f", ETA {_duration(left / rate)}" if rate > 0 and left > 0 else "")
        return f"rows {self.done}, {rate:.1f} rows/s"

    def update(self, rows: int) -> None:
        self.done += rows
        self._bar.update(rows)
        now = time.perf_counter()
        if now - self._last_log >= self.interval:
            self._last_log = now
            logger.info(self.line())

    def close(self) -> None:
        self._bar.close()
        logger.info(self.line() + f"; finished in {_duration(time.perf_counter() - self.start)}")
