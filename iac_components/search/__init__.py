"""The IAC search: the bilevel search engine and the JSD progressive-pruning handler (IAC-LTH)."""

from __future__ import annotations

from iac_components.search.engine import IACSearchTrainer, IACTrainer, SearchEvents
from iac_components.search.optim import sync_optimizer
from iac_components.search.pruning import JSDPruningHandler, jsd

__all__ = ["IACSearchTrainer", "IACTrainer", "JSDPruningHandler", "SearchEvents", "jsd", "sync_optimizer"]
