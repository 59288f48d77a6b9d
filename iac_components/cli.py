"""The ``iac`` command line (also ``python -m iac_components``), built with fire.

Each command imports what it needs when it runs, so ``iac --help`` is fast.
"""

from __future__ import annotations

from typing import Any

import fire

__all__ = ["IAC", "main"]


class IAC:
    """IAC-LTH command line: synthetic data, dataset preparation, the demo, reports, benchmarks, bundles."""

    def __init__(self) -> None:
        self.bundles = Bundles()
        self.monailabel = MonaiLabel()
        self.nnunet = NNUNet()

    def synth(self, dataset: str, out_dir: str, patients: int = 20, seed: int = 0, **kwargs):
        """Write a synthetic stand-in for DATASET in its official raw layout under OUT_DIR."""
        from iac_components.data.synth import synthesize

        return str(synthesize(dataset, out_dir, patients=patients, seed=seed, **kwargs))

    def demo(self, out: str = "demo", patients: int = 20, seed: int = 0, threads: int | None = None):
        """The whole pipeline on synthetic ACDC data through the acdc_iac bundle: train, IAC-LTH search,
        retrain, evaluate, export, infer; prints a summary table. Outputs go under OUT."""
        from iac_components.demo import run_demo

        run_demo(out, patients=patients, seed=seed, threads=threads)

    def benchmark(self, out: str = "benchmarks/runs/lth_vs_full", seeds: Any = (1, 2, 3), epochs: int = 100,
                  retrain_epochs: int = 6, n_random: int = 5, noise_seeds: Any = (), patients: int = 60,
                  dataset_dir: str | None = None, results: str = "benchmarks/results/lth_vs_full",
                  margin: float = 0.005, report_only: bool = False, lth_overrides: dict | None = None,
                  search_overrides: dict | None = None, threads: int | None = None, devices: str = "cpu",
                  jobs: int = 1):
        """The evidence: per seed the baseline, the full search and IAC-LTH, the truncated control, and retrains of
        their cells, N_RANDOM random cells and no cells, evaluated per patient; pooled into paired tests (TOST for
        LTH vs full at MARGIN) in RESULTS.json and RESULTS.md. Seeds resume; --report_only pools what finished.
        --devices cuda (every visible GPU), --devices 0,1 or --jobs N (processes per device) run the seeds'
        independent steps side by side, one process each."""
        from iac_components.benchmark.runner import run_benchmark
        from iac_components.benchmark.schedule import ScheduleError

        try:
            run_benchmark(out, seeds, epochs, retrain_epochs, n_random, noise_seeds, patients, dataset_dir,
                          results=results, margin=margin, report_only=report_only, lth_overrides=lth_overrides,
                          search_overrides=search_overrides, threads=threads, devices=devices, jobs=jobs)
        except ScheduleError as e:  # a failed step (named with its log), or devices/jobs/patients that cannot run
            raise SystemExit(f"error: {e}") from None

    def report(self, run_dir: str, out: str | None = None, group: int = 0):
        """Figures and tables of a search: RUN_DIR holds search_history.json (or is the file); OUT defaults to
        RUN_DIR/report."""
        from iac_components.analysis.report import write_report

        numbers = write_report(run_dir, out, group)
        print("\n".join(f"{k}: {v}" for k, v in numbers["files"].items()))

    def prepare(self, dataset: str, raw_dir: str, cache_dir: str, **kwargs):
        """Preprocess RAW_DIR (official layout of DATASET) into the slice cache CACHE_DIR."""
        from iac_components.data.prepare import prepare_dataset

        return str(prepare_dataset(dataset, raw_dir, cache_dir, **kwargs))


class Bundles:
    """Generate the bundle collection from its template and table, or check the committed one."""

    def generate(self, out: str = "bundles", names: str | None = None):
        """Write the bundles (all, or the comma-separated NAMES) under OUT."""
        from iac_components.bundles.generator import generate

        written = generate(out, names)
        print(f"{len(written)} file(s) written under {out}")

    def check(self, out: str = "bundles", names: str | None = None):
        """Fail when a bundle under OUT differs from what the generator writes."""
        from iac_components.bundles.generator import check

        problems = check(out, names)
        if problems:
            raise SystemExit("bundles differ from the generator's output (run `iac bundles generate`):\n  " + "\n  ".join(problems))
        print(f"bundles under {out} match the generator")

    def package(self, bundle: str, out: str = "release", models: str | None = None, cache_dir: str | None = None,
                url: str | None = None, include_pt: bool = False):
        """Write BUNDLE's release asset under OUT: <name>_v<version>.zip (bundle folder at its root, models/model.ts,
        no cache or outputs), the model.ts that its large_files.yml names, and the model_info.json index; URL is
        where OUT will be served from. BUNDLE is a bundle folder or a collection name."""
        from iac_components.bundles.package import package_bundle

        result = package_bundle(bundle, out, models, cache_dir, url, include_pt)
        print("\n".join(f"{k}: {v}" for k, v in result.items()))

    def list(self):
        """The names of the bundles of the collection."""
        from iac_components.bundles.table import all_bundles

        return [s.name for s in all_bundles()]


class MonaiLabel:
    """A MONAI Label app for the collection's bundles."""

    def app(self, out: str, bundle: str, cache_dir: str | None = None):
        """Write a MONAI Label app under OUT serving BUNDLE (comma-separated release zips or trained bundle folders)
        from TorchScript, with fine-tuning on MONAI Label's labels; prints the command that starts it."""
        from iac_components.monailabel import write_app

        written = write_app(out, bundle.split(",") if isinstance(bundle, str) else list(bundle), cache_dir)
        for name, path in written.items():
            print(f"{name}: {path}")
        print(
            "start it (in MONAI Label's own environment, see the bundle README):\n"
            f"  monailabel start_server --app {out} --studies <folder of .nii.gz> --conf models {','.join(written)} "
            "--host 127.0.0.1 --port 8000"
        )


class NNUNet:
    """IAC in nnU-Net v2's own pipeline (the [nnunet] extra): trainers for nnUNetv2_train / nnUNetv2_predict."""

    def trainers(self):
        """The folder to export as nnUNet_extTrainer (export nnUNet_extTrainer=$(iac nnunet trainers)), where
        nnU-Net finds nnUNetTrainerIACSearch, nnUNetTrainerIACFullSearch and nnUNetTrainerIAC."""
        from iac_components.nnunet import trainers_dir

        return trainers_dir()


def main() -> None:
    fire.Fire(IAC, name="iac")
