"""The demo's data: bundled sample feedback for three agents and the simulated users who review new drafts.

Both are made up for `finetune demo` (see `samples` and `users`); faces import from here.
"""

from core.demo.samples import AGENTS, generate_events, sample_path
from core.demo.users import Reaction, SimulatedUser, ideal_reply, population, prompts, react, similarity

__all__ = [
    "AGENTS",
    "Reaction",
    "SimulatedUser",
    "generate_events",
    "ideal_reply",
    "population",
    "prompts",
    "react",
    "sample_path",
    "similarity",
]
