"""``iac benchmark``: the evidence for IAC-LTH on data where cells can matter, with its controls and statistics.

Per seed: the baseline, the full search (to its budget) and the IAC-LTH search, the truncated control, and the
retrain arms (the full search's cell, LTH's, the truncated one, random cells, no cells), evaluated per patient on
a large test fold. One module per part:

* :mod:`~iac_components.evidence.runner`: :func:`run_benchmark` and :func:`run_seed`, through the bundle's configs;
* :mod:`~iac_components.evidence.report`: :func:`pooled_report` (the paired comparisons, TOST, agreement beside
  chance, the speed-up measured in the same run) and the markdown report;
* :mod:`~iac_components.evidence.calibration`: :func:`replay_rule` and :func:`sweep_rules`, the rule replayed on a
  recorded full search;
* :mod:`~iac_components.evidence.genotypes`: :func:`random_genotype`, :func:`genotype_agreement` and
  :func:`chance_agreement`.
"""

from __future__ import annotations

from iac_components.evidence.calibration import SWEEP, replay_rule, sweep_rules
from iac_components.evidence.genotypes import chance_agreement, genotype_agreement, random_genotype
from iac_components.evidence.report import pooled_report
from iac_components.evidence.runner import EVIDENCE_DATA, run_benchmark, run_seed

__all__ = [
    "EVIDENCE_DATA", "SWEEP", "chance_agreement", "genotype_agreement", "pooled_report", "random_genotype",
    "replay_rule", "run_benchmark", "run_seed", "sweep_rules",
]  # fmt: skip
