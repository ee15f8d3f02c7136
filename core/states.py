"""The unified job states. Every provider status maps to exactly one of them."""

from __future__ import annotations

JOB_STATES: tuple[str, ...] = (
    "pending_approval",
    "submitting",
    "validating",
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
)
ACTIVE_JOB_STATES: frozenset[str] = frozenset({"submitting", "validating", "queued", "running"})
FINAL_JOB_STATES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
