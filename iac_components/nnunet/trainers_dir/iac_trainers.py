"""nnU-Net looks for trainer classes in the folders of ``nnUNet_extTrainer``; this one re-exports the IAC trainers
from the installed package (``export nnUNet_extTrainer=$(iac nnunet trainers)``)."""

from iac_components.nnunet.trainers import nnUNetTrainerIAC, nnUNetTrainerIACFullSearch, nnUNetTrainerIACSearch

__all__ = ["nnUNetTrainerIAC", "nnUNetTrainerIACFullSearch", "nnUNetTrainerIACSearch"]
