"""The IAC search: the bilevel search engine, the pure JSD rule and the progressive-pruning handler (IAC-LTH)."""

from __future__ import annotations

from iac_components.search.engine import IACSearchTrainer, IACTrainer, NonFiniteError, SearchEvents
from iac_components.search.optim import sync_optimizer
from iac_components.search.pruning import JSDPruningHandler
from iac_components.search.rule import JSDRule, jsd, replay_history

__all__ = [
    "IACSearchTrainer",
    "IACTrainer",
    "JSDPruningHandler",
    "JSDRule",
    "NonFiniteError",
    "SearchEvents",
    "jsd",
    "replay_history",
    "sync_optimizer",
]
