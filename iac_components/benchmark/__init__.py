"""``iac benchmark``: the full 200-epoch-style search against IAC-LTH, with controls and paired statistics.

For each seed, on the same data and folds: the baseline, the full search and the IAC-LTH search, and four retrain
arms (the full search's genotype, the LTH genotype, a random genotype, no cells), evaluated per patient on the
test patients; the rule replayed on the full search for calibration. One module per part:

* :mod:`~iac_components.benchmark.runner`: :func:`run_benchmark`, which runs every arm through the bundle's configs;
* :mod:`~iac_components.benchmark.report`: the seeds pooled into paired tests, and the markdown report;
* :mod:`~iac_components.benchmark.calibration`: :func:`replay_rule` and :func:`sweep_rules`, the rule replayed on a
  recorded full search;
* :mod:`~iac_components.benchmark.genotypes`: :func:`random_genotype` (the random arm) and
  :func:`genotype_agreement`.
"""

from __future__ import annotations

from iac_components.benchmark.calibration import SWEEP, replay_rule, sweep_rules
from iac_components.benchmark.genotypes import genotype_agreement, random_genotype
from iac_components.benchmark.report import ARMS
from iac_components.benchmark.runner import run_benchmark

__all__ = ["ARMS", "SWEEP", "genotype_agreement", "random_genotype", "replay_rule", "run_benchmark", "sweep_rules"]
