"""The bundle collection: a table (datasets x backbones), a template per workflow file, the generator, and the
runtime functions the bundles' configs call."""

from __future__ import annotations

__all__: list[str] = []
