"""Moved to :mod:`ra_guard.local` (the local judge lives in ``ra_guard/local/judge.py``); re-exported here."""

from ra_guard.local.judge import JudgeSettings, LocalJudge, LocalModelError, LocalOutOfMemoryError, Mode, OnTooLong

__all__ = ["JudgeSettings", "LocalJudge", "LocalModelError", "LocalOutOfMemoryError", "Mode", "OnTooLong"]
