"""Progress of a whole dataset job: rows done out of the total, rows per second and the time left. On a terminal
it is a tqdm bar; it is also logged (logger ``deepinterpret.batch``, level INFO) every ``interval`` seconds, so
that it shows in the logs of a batch system or a Ray cluster where there is no terminal. It is the batching
engine's meter (:class:`deepinterpret.core.batching.Progress`) counting rows."""

from __future__ import annotations

import logging
import time  # noqa: F401  (the meter's clock; tests set it)

from ..core.batching import Progress

logger = logging.getLogger("deepinterpret.batch")


class JobProgress(Progress):
    """Counts rows (one per input and method). ``resumed`` rows were done by an earlier run: they count as done
    but not in the rate. The log lines are written whether or not the bar shows."""

    def __init__(self, total: int | None, resumed: int = 0, bar: bool | None = None, interval: float = 5.0):
        super().__init__(total, "rows", "row", bar, resumed, interval, logger, leave=True)
        self.enabled = True

    def close(self, summary: bool = True) -> None:
        super().close(summary)
