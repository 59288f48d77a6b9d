"""What the bundles' JSON configs call, by a name that stays: ``iac_components.bundles.runtime.<name>`` is the
stable surface of every generated and released bundle, so that a bundle keeps working when the code behind a name
moves. Each name lives in the module of its subject:

* :mod:`.bundle_data`: the data (prepared into the slice cache on first use), its folds, the loaders' batch;
* :mod:`.bundle_networks`: the search supernet, the network with fixed cells, the inference network, the retrain's
  parameter groups;
* :mod:`.model_record`: what a trained model carries (preprocessing, cells) and the deployed model;
* :mod:`.export`: TorchScript and ``torch.export`` releases;
* :mod:`.evaluation`: the per-patient evaluation and the cells' contribution while retraining.

Each fails with one line that says what to do (``SystemExit``), since a bundle run is a command a person typed.
``inference.json`` never imports this module when it runs on ``models/model.ts`` alone.
"""

from __future__ import annotations

from iac_components.bundles.bundle_data import BundleData, check_patch_size, loader_batch_size, search_identity
from iac_components.bundles.bundle_networks import fixed_network, inference_network, retrain_param_groups, search_network
from iac_components.bundles.evaluation import CellContributionHandler, evaluate_models
from iac_components.bundles.export import export_program, export_torchscript
from iac_components.bundles.model_record import ModelRecord, deployed_geometry, deployed_model, model_record, release_preprocessing
from iac_components.utils import as_bool

__all__ = [
    "BundleData",
    "CellContributionHandler",
    "ModelRecord",
    "as_bool",
    "check_patch_size",
    "deployed_geometry",
    "deployed_model",
    "evaluate_models",
    "export_program",
    "export_torchscript",
    "fixed_network",
    "inference_network",
    "loader_batch_size",
    "model_record",
    "release_preprocessing",
    "retrain_param_groups",
    "search_identity",
    "search_network",
]
