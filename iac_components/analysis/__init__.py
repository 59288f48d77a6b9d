"""Search-history analysis: the paper's temporal analyses as numbers (:mod:`.temporal`) and figures
(:mod:`.report`, ``iac report RUN_DIR``)."""

from __future__ import annotations

__all__: list[str] = []
