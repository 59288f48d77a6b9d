"""The ``iac`` command line (also ``python -m iac_components``), built with fire.

Each command imports what it needs when it runs, so ``iac --help`` is fast. Before a command runs, every
``--flag`` is checked against its parameters (a typo is refused with the closest valid flag, before anything is
written), and an error ends in one ``error: ...`` line with exit status 1 (``--traceback`` shows the trace).
"""

from __future__ import annotations

import difflib
import inspect
import os
import sys
from collections.abc import Sequence
from typing import Any

import fire

__all__ = ["IAC", "check_flags", "main"]


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
                  dataset_dir: str | None = None, results: str | None = None,
                  margin: float = 0.005, report_only: bool = False, lth_overrides: dict | None = None,
                  search_overrides: dict | None = None, threads: int | None = None, devices: str = "cpu",
                  jobs: int = 1):
        """The evidence: per seed the baseline, the full search and IAC-LTH, the truncated control, and retrains of
        their cells, N_RANDOM random cells and no cells, evaluated per patient; pooled into paired tests (TOST for
        LTH vs full at MARGIN) in RESULTS.json and RESULTS.md (default OUT/lth_vs_full: the committed results under
        benchmarks/results/ change only when --results names them). Seeds resume; --report_only pools what finished.
        --devices cuda (every visible GPU), --devices 0,1 or --jobs N (processes per device) run the seeds'
        independent steps side by side, one process each."""
        from iac_components.evidence.runner import run_benchmark
        from iac_components.evidence.schedule import ScheduleError

        try:
            run_benchmark(out, seeds, epochs, retrain_epochs, n_random, noise_seeds, patients, dataset_dir,
                          results=results or os.path.join(out, "lth_vs_full"), margin=margin, report_only=report_only,
                          lth_overrides=lth_overrides,
                          search_overrides=search_overrides, threads=threads, devices=devices, jobs=jobs)
        except ScheduleError as e:  # a failed step (named with its log), or devices/jobs/patients that cannot run
            raise SystemExit(f"error: {e}") from None

    def gpu_check(self, out: str = "gpu_check", dry_run: bool = False, parts: str | None = None):
        """Every CUDA path and GPU figure in one command, each part in its own process under a time box: results in
        OUT/<part>.json and OUT/summary.json. --dry_run: the same parts on the CPU at toy sizes. --parts a,b: some."""
        from iac_components.gpu_check import run_gpu_check

        summary = run_gpu_check(out, dry_run=dry_run, parts=parts)
        failed = [k for k, v in summary["parts"].items() if v["rc"] != 0]
        if failed:
            raise SystemExit(f"error: part(s) {', '.join(failed)} failed; see {out}/<part>.json")

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

    def package(self, bundle: str, out: str = "release", ckpt_dir: str | None = None, cache_dir: str | None = None,
                url: str | None = None, include_pt: bool = False):
        """Write BUNDLE's release asset under OUT: <name>_v<version>.zip (bundle folder at its root, models/model.ts,
        no cache or outputs), the model.ts that its large_files.yml names, and the model_info.json index; URL is
        where OUT will be served from. BUNDLE is a bundle folder or a collection name."""
        from iac_components.bundles.package import package_bundle

        result = package_bundle(bundle, out, ckpt_dir, cache_dir, url, include_pt)
        print("\n".join(f"{k}: {v}" for k, v in result.items()))

    def show(self, name: str, cache_dir: str | None = None):
        """A bundle's settings (dataset, backbone, default geometry, epochs, the search recipe) and, given the
        CACHE_DIR a run prepared, what the run chose: geometry, channels, classes, folds, the export's input shape."""
        import json
        from pathlib import Path

        from iac_components.bundles.table import get_bundle
        from iac_components.data.settings import get_settings

        spec = get_bundle(name)
        d = spec.dataset
        lines = [f"{spec.name}: {d.title} x {spec.backbone.title}", f"data: {d.source} (--dataset_dir, default {d.default_dir})"]
        v = spec.volume if spec.volumetric else None
        if d.key != "custom":
            st = get_settings(d.adapter)
            spacing, size = (v.spacing or st.spacing, v.spatial_size or st.spatial_size) if v else (st.spacing, st.spatial_size)
            lines.append(f"default geometry: spacing {list(spacing)} mm, slice size {list(size)}; "
                         f"classes: {', '.join(st.class_names)}")  # fmt: skip
        if v is not None:
            lines.append(f"3-D: patch {list(v.patch_size)}, batch {v.batch_size} (search {v.search_batch_size}), "
                         f"{v.samples_per_volume} patches per volume per epoch, sliding-window overlap {v.sw_overlap}"
                         + ("" if v.spacing else "; spacing: the data's median in-plane, their slices kept"))
        lines.append(f"epochs: train {d.epochs['train']}, search {d.epochs['search']}, retrain {d.epochs['retrain']}"
                     + ("" if spec.volumetric else f"; batch {d.batch_size} slices"))  # fmt: skip
        from iac_components.bundles.overlays import load_merged

        search = load_merged(_bundle_dir(spec.name) / "configs" / "search.json")
        lines.append("search: " + ", ".join(f"{k} {search[k]}" for k in (
            "ops", "cell_channels", "partial_k", "learning_rate", "arch_learning_rate", "warmup_steps") if k in search)
            + f"; rule {search.get('pruning')}")  # fmt: skip
        if cache_dir:
            from iac_components.data.summary import data_summary

            manifest = Path(cache_dir) / "manifest.json"
            if not manifest.is_file():
                raise FileNotFoundError(f"no prepared cache at {cache_dir} (manifest.json): run a workflow first")
            splits = Path(cache_dir) / "splits.json"
            lines += data_summary(json.loads(manifest.read_text()),
                                  json.loads(splits.read_text()) if splits.is_file() else None, d.window_slices,
                                  list(spec.volume.patch_size) if spec.volumetric else None)
        print("\n".join(lines))

    def export_program(self, bundle: str, ckpt_dir: str | None = None, input_shape: str | None = None):
        """Write CKPT_DIR/model.pt2 (default BUNDLE/models): the inference network as a torch.export program (dynamic
        number of slices), checked against the eager network; inference.json runs it when present, without
        iac_components. INPUT_SHAPE: "[1, C, H, W, S]" (default from the model's manifest.json; a 3-D bundle's:
        its patch, from inference.json)."""
        import json
        from pathlib import Path

        from iac_components.bundles.export import export_program

        root = Path(bundle) if Path(bundle, "configs").is_dir() else _bundle_dir(bundle)
        models = Path(ckpt_dir) if ckpt_dir else root / "models"
        if input_shape is None:
            manifest = models / "manifest.json"
            if not manifest.is_file():
                raise FileNotFoundError(f"no {manifest} to read the input shape from: pass --input_shape \"[1, C, H, W, 16]\"")
            m = json.loads(manifest.read_text())
            volumetric = "patch_size" in json.loads((root / "configs" / "inference.json").read_text())
            patch = (m.get("patch_size") or _default_patch(root)) if volumetric else None  # the trained patch
            shape = [1, len(m["channel_names"]), *(patch or [*m["settings"]["spatial_size"], 16])]
        else:
            shape = json.loads(input_shape) if isinstance(input_shape, str) else list(input_shape)
        print(export_program(str(root), str(models), shape))

    def list(self):
        """The names of the bundles of the collection."""
        from iac_components.bundles.table import all_bundles

        return [s.name for s in all_bundles()]


def _default_patch(root) -> list[int]:
    """A 3-D bundle's default patch, for a model whose manifest records none."""
    from iac_components.bundles.table import get_bundle

    try:
        return list(get_bundle(root.name).volume.patch_size)
    except ValueError as e:
        raise SystemExit(f"error: {root.name} is not a bundle of the collection: pass --input_shape \"[1, C, H, W, D]\"") from e


def _bundle_dir(name: str):
    from iac_components.bundles.run import find_bundle

    return find_bundle(name)


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


def _command(root: Any, argv: Sequence[str]) -> tuple[list[str], Any]:
    """The command path of ``argv`` (``["bundles", "package"]``) and the method it names (None for a group or an
    unknown name, which fire reports itself)."""
    obj, path = root, []
    for tok in argv:
        if tok.startswith("-"):
            break
        attr = getattr(obj, tok.replace("-", "_"), None) if not tok.startswith("_") else None
        if attr is None:
            break
        path.append(tok)
        obj = attr
        if callable(obj) and not inspect.isclass(obj) and inspect.ismethod(obj):
            return path, obj
    return path, None


def check_flags(root: Any, argv: Sequence[str]) -> None:
    """Refuse a ``--flag`` that the command does not take, naming the closest one (before anything runs).

    Raises:
        SystemExit: ``error: unknown flag ...`` (exit status 1).
    """
    path, method = _command(root, argv)
    if method is None:
        return
    params = inspect.signature(method).parameters
    # a command with **options checks them itself (iac synth: the generator's); a near miss of one of its own
    # parameters is still refused here
    open_ended = any(p.kind is p.VAR_KEYWORD for p in params.values())
    names = [n for n in params if n != "self" and params[n].kind is not params[n].VAR_KEYWORD]
    for tok in argv[len(path):]:
        if tok == "--":
            break
        if not tok.startswith("--") or tok in ("--help", "--traceback"):
            continue
        flag = tok[2:].split("=", 1)[0].replace("-", "_")
        if flag.startswith("no") and flag[2:] in names:  # fire's --noflag for a boolean
            continue
        if flag not in names:
            close = difflib.get_close_matches(flag, names, n=1, cutoff=0.8 if open_ended else 0.5)
            if open_ended and not close:
                continue
            hint = f"; did you mean --{close[0]}?" if close else f"; it takes {', '.join('--' + n for n in names) or 'no flags'}"
            raise SystemExit(f"error: unknown flag --{flag} for 'iac {' '.join(path)}'{hint}")


def main(argv: Sequence[str] | None = None) -> None:
    """``iac``: check the flags, run the command, and turn an error into one line (``--traceback`` for the trace)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("--version", "-V", "version"):
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"iac_components {version('iac_components')}")
        except PackageNotFoundError:
            print("iac_components (not installed)")
        return
    traceback = "--traceback" in argv or os.environ.get("IAC_TRACEBACK") == "1"
    argv = [a for a in argv if a != "--traceback"]
    root = IAC()
    check_flags(root, argv)
    try:
        fire.Fire(root, command=argv, name="iac")
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # noqa: BLE001 - every failure of a command ends in one line unless asked otherwise
        if traceback:
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        prefix = "" if first.startswith("error:") else "error: "
        raise SystemExit(f"{prefix}{first} (run with --traceback for the full trace)") from None
