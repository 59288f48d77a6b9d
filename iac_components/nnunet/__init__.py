"""IAC cells in nnU-Net v2's own pipeline, 2d and 3d_fullres (the optional extra: ``pip install -e ".[nnunet]"``).

nnU-Net users keep ``nnUNetv2_plan_and_preprocess``, ``nnUNetv2_train``, ``nnUNetv2_predict`` and nnU-Net's
evaluation; this package adds trainer classes that nnU-Net finds through its ``nnUNet_extTrainer`` variable::

    export nnUNet_extTrainer=$(iac nnunet trainers)      # the folder of this package's trainer classes
    nnUNetv2_train 1 2d 0                                # the baseline, nnU-Net's own trainer
    nnUNetv2_train 1 2d 0 -tr nnUNetTrainerIACSearch     # IAC-LTH search on the frozen baseline
    nnUNetv2_train 1 2d 0 -tr nnUNetTrainerIAC           # retrain with the derived cells (fine-tunes the baseline)
    nnUNetv2_predict -i ... -o ... -d 1 -c 2d -f 0 -tr nnUNetTrainerIAC

``3d_fullres`` in place of ``2d`` searches and retrains 3-D cells on nnU-Net's 3-D U-Net, with the same trainers.

* :mod:`iac_components.nnunet.network`: the implant adapter for nnU-Net's networks (``PlainConvUNet``,
  ``ResidualEncoderUNet`` of dynamic-network-architectures), registered here, when this package is imported.
* :mod:`iac_components.nnunet.trainers`: ``nnUNetTrainerIACSearch`` (IAC-LTH), ``nnUNetTrainerIACFullSearch``
  (the full search, observe-only) and ``nnUNetTrainerIAC`` (retrain); the same search space, bilevel step
  (:class:`~iac_components.search.IACSearchTrainer`) and JSD rule
  (:class:`~iac_components.search.JSDPruningHandler`) as the bundles.
"""

from __future__ import annotations

from pathlib import Path

try:
    import nnunetv2  # noqa: F401
except ImportError as e:  # pragma: no cover - the message is the point
    raise ImportError(
        "iac_components.nnunet needs nnU-Net v2: pip install -e \".[nnunet]\" (or pip install nnunetv2)"
    ) from e

from iac_components.nnunet.network import NNUNetNetworkAdapter, register_nnunet_adapter

__all__ = ["NNUNetNetworkAdapter", "TRAINERS_DIR", "trainers_dir"]

#: The folder to put in ``nnUNet_extTrainer``: it holds one module that re-exports this package's trainers.
TRAINERS_DIR = Path(__file__).resolve().parent / "trainers_dir"


def trainers_dir() -> str:
    """The folder for ``nnUNet_extTrainer`` (``export nnUNet_extTrainer=$(iac nnunet trainers)``)."""
    return str(TRAINERS_DIR)


register_nnunet_adapter()
