"""The settings of one local training run, read from a job's hyperparameters (finetune-ops names).

The catalog checks each value against its range before a job is recorded; this
reads them into one typed object and refuses names the local trainer does not
know, so a job never trains on something other than what it asked for. No
torch here: the provider checks a request before it starts a worker.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from core.errors import InvalidInput
from core.vocabulary import Method, one_of

__all__ = ["HYPERPARAMETERS", "TrainConfig"]

MAX_LENGTH = 2048  # tokens per example; longer ones are cut (the worker says how many)


@dataclass(frozen=True)
class TrainConfig:
    method: Method = Method.SUPERVISED
    epochs: int = 3
    batch_size: int = 8  # examples per forward pass (per device)
    gradient_accumulation_steps: int = 1  # forward passes per optimiser step
    learning_rate: float = 2e-4
    warmup_steps: int = 0
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    beta: float = 0.1  # DPO: how far the trained model may move from the base
    gradient_checkpointing: bool = False
    merge: bool = False
    max_length: int = MAX_LENGTH
    seed: int = 0
    max_steps: int | None = None  # stop after this many optimiser steps (benchmarks); None: every epoch

    @classmethod
    def from_hyperparameters(cls, method: str, hyperparameters: Mapping[str, Any], *, seed: int = 0) -> TrainConfig:
        """The run's settings; InvalidInput names a hyperparameter that is unknown or not a number."""
        if method not in (Method.SUPERVISED, Method.DPO):
            raise InvalidInput(f"method {method!r} is not offered by local training.", hint=f"Use {one_of(Method)}.")
        unknown = sorted(set(hyperparameters) - set(HYPERPARAMETERS))
        if unknown:
            raise InvalidInput(
                f"local training takes no hyperparameter {', '.join(unknown)}.",
                hint=f"It takes: {', '.join(HYPERPARAMETERS)}.",
            )
        values: dict[str, Any] = {"method": Method(method), "seed": seed}
        for name, value in hyperparameters.items():
            values[name] = _typed(name, value)
        return replace(cls(), **values)


_INTEGERS = ("epochs", "batch_size", "gradient_accumulation_steps", "warmup_steps", "lora_r", "lora_alpha")
_FLOATS = ("learning_rate", "beta")
_SWITCHES = ("gradient_checkpointing", "merge")
HYPERPARAMETERS: tuple[str, ...] = (*_INTEGERS, *_FLOATS, *_SWITCHES)


def _typed(name: str, value: object) -> int | float | bool:
    number = _number(value)
    if number is None:
        raise InvalidInput(f"hyperparameter {name}={value!r} is not a number.", hint=f"Give {name} as a number.")
    if name in _SWITCHES:
        if number not in (0, 1):
            raise InvalidInput(f"hyperparameter {name}={value!r} must be 0 or 1.", hint=f"Give {name} as 0 (off) or 1.")
        return bool(number)
    if name in _INTEGERS:
        if not number.is_integer() or number < (0 if name == "warmup_steps" else 1):
            raise InvalidInput(
                f"hyperparameter {name}={value!r} must be a whole number of at least {0 if name == 'warmup_steps' else 1}.",
                hint=f"Give {name} as a whole number.",
            )
        return int(number)
    if number <= 0:
        raise InvalidInput(
            f"hyperparameter {name}={value!r} must be above 0.", hint=f"Give {name} as a positive number."
        )
    return number


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None
