"""IAC-LTH: Implantable Adaptive Cells for U-Net skip connections, searched with JSD progressive pruning.

Submodules are imported lazily by the code that needs them, so ``import iac_components`` stays cheap and
registers nothing in MONAI's global registries until a network module is imported.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
