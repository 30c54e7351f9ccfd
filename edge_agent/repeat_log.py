"""Log a recurring failure once, not at every retry.

A dying SD card makes every flush fail, once per second, for days; logging
each one would flood the journal, which lives on that same card. The first
failure is logged with its traceback, a different one is logged again, the
recovery is logged once; identical repeats are only counted.
"""

from __future__ import annotations

import logging


class RepeatLog:
    def __init__(self, logger: logging.Logger, what: str):
        self.logger = logger
        self.what = what
        self.failing: str | None = None
        self.repeats = 0

    def failed(self, exc: BaseException) -> None:
        key = f"{type(exc).__name__}: {exc}"
        if key == self.failing:
            self.repeats += 1
            return
        self.failing, self.repeats = key, 0
        self.logger.error("%s failed: %s", self.what, key, exc_info=exc)

    def ok(self) -> None:
        if self.failing is not None:
            self.logger.warning("%s works again (after %d more failures)", self.what, self.repeats)
            self.failing, self.repeats = None, 0
