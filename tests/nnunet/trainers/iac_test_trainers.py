"""Small trainer variants for the nnU-Net tests (nnU-Net's way: subclasses that change the budget), found by
nnU-Net through ``nnUNet_extTrainer``: a baseline of a few iterations, a search on a tiny budget with a rule loose
enough to decide a cell within it, and a short retrain that reads that search's genotype."""

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from iac_components.nnunet.trainers import nnUNetTrainerIAC, nnUNetTrainerIACSearch


def one_thread() -> None:
    """nnU-Net's ``-device cpu`` gives torch every core (run_training.py); the tests' tensors are tiny and share the
    cores with other processes, where spinning OpenMP threads made a 3-D search epoch take minutes instead of seconds."""
    torch.set_num_threads(1)


class nnUNetTrainer_iactest(nnUNetTrainer):
    # nnU-Net records __init__'s named arguments for its checkpoints: the signature is spelled out
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        one_thread()
        self.num_epochs = 2
        self.num_iterations_per_epoch = 10
        self.num_val_iterations_per_epoch = 2


class nnUNetTrainerIACSearch_iactest(nnUNetTrainerIACSearch):
    baseline_trainer = "nnUNetTrainer_iactest"

    # nnU-Net records __init__'s named arguments for its checkpoints: the signature is spelled out
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        one_thread()
        self.num_epochs = 8
        self.num_iterations_per_epoch = 10
        self.warmup_iterations = 4
        self.arch_lr = 0.05
        self.cell_channels = 8
        self.pruning.update({"epsilon": 0.5, "window": 2, "patience": 1, "margin": 0.05, "interval": 2})


class nnUNetTrainerIAC_iactest(nnUNetTrainerIAC):
    baseline_trainer = "nnUNetTrainer_iactest"
    search_trainer = "nnUNetTrainerIACSearch_iactest"

    # nnU-Net records __init__'s named arguments for its checkpoints: the signature is spelled out
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        one_thread()
        self.num_epochs = 2
        self.num_iterations_per_epoch = 5
        self.num_val_iterations_per_epoch = 2
