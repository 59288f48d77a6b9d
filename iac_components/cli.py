"""The ``iac`` command line (also ``python -m iac_components``), built with fire.

Each command imports what it needs when it runs, so ``iac --help`` is fast.
"""

from __future__ import annotations

import fire

__all__ = ["IAC", "main"]


class IAC:
    """IAC-LTH command line: synthetic data, dataset preparation, the demo, reports, benchmarks, bundles."""

    def synth(self, dataset: str, out_dir: str, patients: int = 20, seed: int = 0, **kwargs):
        """Write a synthetic stand-in for DATASET in its official raw layout under OUT_DIR."""
        from iac_components.data.synth import synthesize

        return str(synthesize(dataset, out_dir, patients=patients, seed=seed, **kwargs))

    def prepare(self, dataset: str, raw_dir: str, cache_dir: str, **kwargs):
        """Preprocess RAW_DIR (official layout of DATASET) into the slice cache CACHE_DIR."""
        from iac_components.data.prepare import prepare_dataset

        return str(prepare_dataset(dataset, raw_dir, cache_dir, **kwargs))


def main() -> None:
    fire.Fire(IAC, name="iac")
