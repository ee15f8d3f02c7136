"""What every evaluation result shares: intervals, and the checks of arguments at the boundary.

Statistics get their arguments from faces, files and the scheduler; a NaN, a
negative count or a share of 50 (meant as 50 %) would otherwise come out as a
silent NaN p-value or a numpy traceback. Every public function checks its
arguments here first and raises `InvalidInput` naming the argument and the fix.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from core.errors import InvalidInput

Samples = Sequence[float] | npt.NDArray[np.float64]  # observations of one arm: a list or a 1-d array

DEFAULT_ALPHA = 0.05
MAX_MAGNITUDE = 1e100  # observations beyond it would overflow their variance
DEFAULT_CONFIDENCE = 0.95


class Interval(BaseModel):
    """A confidence interval: the range of values compatible with the data at `confidence`."""

    model_config = ConfigDict(frozen=True)

    low: float
    high: float
    confidence: float = Field(description="Coverage the interval is built for, e.g. 0.95.")

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


def shown(value: object) -> str:
    """`repr(value)`, cut short: a hostile argument must not make the error message huge."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _finite(value: object) -> float | None:
    """`value` as a finite float; None when it is no real number, or infinite, NaN or too large for a float."""
    if not isinstance(value, numbers.Real):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def check_level(name: str, value: object) -> float:
    """A significance level or confidence level: a number strictly between 0 and 1."""
    number = None if isinstance(value, bool) else _finite(value)
    if number is None or not 0 < number < 1:
        raise InvalidInput(
            f"`{name}` must be a number between 0 and 1 (exclusive), got {shown(value)}.",
            hint="Use e.g. 0.05 for a significance level or 0.95 for a confidence level.",
            argument=name,
        )
    return number


def check_count(name: str, value: object, *, low: int = 0) -> int:
    """A whole number of events or observations, at least `low`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidInput(f"`{name}` must be a whole number, got {shown(value)}.", hint="Pass a count.", argument=name)
    if int(value) < low:
        raise InvalidInput(
            f"`{name}` must be at least {low}, got {value}.", hint="Counts cannot be negative.", argument=name
        )
    return int(value)


def check_successes(prefix: str, successes: object, trials: object) -> tuple[int, int]:
    """`{prefix}_successes` out of `{prefix}_trials`: whole numbers with 0 <= successes <= trials and trials >= 1."""
    n = check_count(f"{prefix}_trials", trials, low=1)
    k = check_count(f"{prefix}_successes", successes)
    if k > n:
        raise InvalidInput(
            f"`{prefix}_successes` ({k}) exceeds `{prefix}_trials` ({n}).",
            hint="Successes are counted among the trials: pass at most as many successes as trials.",
            argument=f"{prefix}_successes",
        )
    return k, n


def check_number(name: str, value: object, *, low: float | None = None, high: float | None = None) -> float:
    """A finite real number, within [low, high] when they are given."""
    number = None if isinstance(value, bool) else _finite(value)
    if number is None:
        raise InvalidInput(
            f"`{name}` must be a finite number, got {shown(value)}.", hint="Pass a number.", argument=name
        )
    if (low is not None and number < low) or (high is not None and number > high):
        raise InvalidInput(
            f"`{name}` must be {_range(low, high)}, got {shown(value)}.", hint="Pass a number in range.", argument=name
        )
    return number


def _range(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"between {low} and {high}"
    return f"at least {low}" if low is not None else f"at most {high}"


def check_positive(name: str, value: object) -> float:
    """A finite number above 0."""
    number = check_number(name, value, low=0.0)
    if number == 0:
        raise InvalidInput(
            f"`{name}` must be above 0, got {shown(value)}.", hint="Pass a positive number.", argument=name
        )
    return number


def check_values(name: str, values: object, *, at_least: int) -> list[float]:
    """A list (or one-dimensional numpy array) of at least `at_least` finite numbers; booleans count as 0 and 1."""
    if isinstance(values, np.ndarray) and values.ndim == 1:
        values = values.tolist()
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise InvalidInput(
            f"`{name}` must be a list of numbers, got {type(values).__name__}.", hint="Pass a list.", argument=name
        )
    numbers_: list[float] = []
    for index, value in enumerate(values):
        number = _finite(value)
        if number is None or abs(number) > MAX_MAGNITUDE:
            raise InvalidInput(
                f"`{name}`[{index}] must be a finite number of magnitude at most {MAX_MAGNITUDE:g}, got {shown(value)}.",
                hint="Drop or fix the observations that are missing or not numbers.",
                argument=name,
                index=index,
            )
        numbers_.append(number)
    if len(numbers_) < at_least:
        raise InvalidInput(
            f"`{name}` needs at least {at_least} observations, got {len(numbers_)}.",
            hint="Collect more data before testing.",
            argument=name,
        )
    return numbers_


def check_p_value(name: str, value: object) -> float:
    """A p-value: a number in [0, 1]."""
    return check_number(name, value, low=0.0, high=1.0)
