"""A MONAI Label app that serves IAC-LTH bundles (written by ``iac monailabel app``; edit freely).

Every bundle under ``model/`` (or those named by ``--conf models a,b``) gets

* an inferer that runs the bundle's ``inference.json`` preprocessing, inferer and postprocessing on
  ``models/model.ts``. MONAI Label itself would prefer ``models/model.pt`` and then build ``network_def``, which
  needs ``iac_components`` and the genotype; this app always serves the TorchScript, so inference needs only MONAI
  and PyTorch. The model declares a 3-D input: the exported network runs a 2-D U-Net with cells slice by slice over
  a volume (``SlidingWindowInferer`` with ``roi_size [-1, -1, window_slices]``), or, in a ``*_iac_3d`` bundle, is a
  3-D U-Net with 3-D cells over overlapping windows of its training patch, so a client sends whole volumes and gets
  a label map in the volume's own grid;
* a trainer that fine-tunes the deployed model on the labelled studies: ``configs/retrain.json`` with the
  ``configs/finetune.json`` overlay (``train#dataset#data`` and ``validate#dataset#data`` from MONAI Label's
  datalist). It needs ``iac_components`` importable in the server's environment. It writes ``models/model.pt`` and
  exports ``models/model.ts`` again; the inferer reloads model.ts when its modification time changes, so the next
  inference uses the fine-tuned model.

No model-zoo lookups and no SAM2: nothing here reaches the network.
"""

import logging
import os
from typing import Dict

import monai.bundle
import monailabel
from monai.bundle import ConfigParser
from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.tasks.infer_v2 import InferTask
from monailabel.interfaces.tasks.strategy import Strategy
from monailabel.interfaces.tasks.train import TrainTask
from monailabel.tasks.activelearning.first import First
from monailabel.tasks.activelearning.random import Random
from monailabel.tasks.infer.bundle import BundleConstants as InferConstants
from monailabel.tasks.infer.bundle import BundleInferTask
from monailabel.tasks.train.bundle import BundleConstants as TrainConstants
from monailabel.tasks.train.bundle import BundleTrainTask
from monailabel.utils.others.generic import strtobool

logger = logging.getLogger(__name__)


class TorchScriptConstants(InferConstants):
    def model_pytorch(self) -> str:
        # a name that is never there: BundleInferTask then takes models/model.ts (see the module docstring)
        return "model.pt.not-served"


class IACInferTask(BundleInferTask):
    def __init__(self, path: str, conf: Dict[str, str]):
        super().__init__(path, conf, const=TorchScriptConstants())
        # MONAI Label offers every models/*.pt by name and would hand the chosen one to torch.jit.load
        self._config.pop("model_filename", None)


class FinetuneConstants(TrainConstants):
    def configs(self):
        return ["finetune.json"]


class IACFinetuneTask(BundleTrainTask):
    """``configs/train.json`` + ``retrain.json`` + ``finetune.json`` with MONAI Label's datalist and epochs."""

    def __init__(self, path: str, conf: Dict[str, str]):
        super().__init__(path, conf, const=FinetuneConstants())

    def _config_files(self, path: str):
        # train.json is the base every training workflow is merged over (the bundle's README, "each key in one file")
        return [os.path.join(path, "configs", n) for n in ("train.json", "retrain.json", "finetune.json")]

    def _load_bundle_config(self, path, config):
        parser = ConfigParser()
        parser.read_config(self._config_files(path))
        parser.config.update({self.const.key_bundle_root(): path})
        return parser

    def run_single_gpu(self, request, overrides):
        monai.bundle.run(
            run_id=request.get("run_id", "run"),
            meta_file=self.bundle_metadata_path,
            config_file=self._config_files(self.bundle_path),
            logging_file=os.path.join(self.bundle_path, "configs", "logging.conf"),
            **overrides,
        )


class IACApp(MONAILabelApp):
    def __init__(self, app_dir, studies, conf):
        model_dir = os.path.join(app_dir, "model")
        found = sorted(
            d for d in (os.listdir(model_dir) if os.path.isdir(model_dir) else [])
            if os.path.isfile(os.path.join(model_dir, d, "configs", "metadata.json"))
        )
        wanted = [m.strip() for m in conf.get("models", "").split(",") if m.strip()]
        missing = [m for m in wanted if m not in found]
        if missing or not found:
            raise ValueError(
                f"bundles {missing or 'none'} not under {model_dir} (there: {found}); "
                "add them with: iac monailabel app --out <this app> --bundle <bundle folder or release zip>"
            )
        self.bundles = {n: os.path.join(model_dir, n) for n in (wanted or found)}
        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name=f"IAC-LTH bundles (MONAI Label {monailabel.__version__})",
            description="U-Nets with Implantable Adaptive Cells, served from TorchScript",
            version="1",
        )

    def init_infers(self) -> Dict[str, InferTask]:
        infers: Dict[str, InferTask] = {}
        for name, path in self.bundles.items():
            task = IACInferTask(path, self.conf)
            if not task.is_valid():
                raise ValueError(f"{path}: no configs/inference.json or models/model.ts; package the bundle first")
            logger.info(f"+++ Adding Inferer:: {name} => {path}")
            infers[name] = task
        return infers

    def init_trainers(self) -> Dict[str, TrainTask]:
        trainers: Dict[str, TrainTask] = {}
        if strtobool(self.conf.get("skip_trainers", "false")):
            return trainers
        for name, path in self.bundles.items():
            task = IACFinetuneTask(path, self.conf)
            if task.is_valid():
                logger.info(f"+++ Adding Trainer:: {name} => {path}")
                trainers[name] = task
        return trainers

    def init_strategies(self) -> Dict[str, Strategy]:
        return {"random": Random(), "first": First()}
