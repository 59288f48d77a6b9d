"""A misspelt override of ``python -m monai.bundle run`` stops the run before any work, naming the closest key."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from iac_components.bundles.overlays import load_merged
from iac_components.bundles.overrides import check_cli_overrides, config_ids, unknown_overrides

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "acdc_iac" / "configs"
MONAI_MAIN = str(Path("site-packages") / "monai" / "bundle" / "__main__.py")


def test_config_ids_cover_nested_keys_list_items_and_path_keys(tmp_path):
    f = tmp_path / "c.json"
    f.write_text('{"a": 1, "b": {"c": [10, {"d": 2}]}, "train#handlers": [{"x": 1}]}')
    assert {"a", "b", "b#c", "b#c#0", "b#c#1#d", "train#handlers#0#x"} <= config_ids([str(f)])


def test_a_misspelt_key_is_named_with_the_closest_valid_one():
    train = str(BUNDLE / "train.json")
    assert unknown_overrides(["--config_file", train, "--epochz", "1", "--epochs", "2"]) == [("epochz", "epochs")]
    with pytest.raises(SystemExit) as e:
        check_cli_overrides([MONAI_MAIN, "run", "--config_file", train, "--epochz", "1"])
    assert str(e.value.code) == ("error: unknown override --epochz: no config file of this run defines 'epochz'; "
                                 "did you mean --epochs?")  # fmt: skip


def test_known_keys_nested_keys_overlays_and_monai_arguments_pass():
    files = f"['{BUNDLE / 'train.json'}','{BUNDLE / 'search.json'}','{BUNDLE / 'multi_gpu_search.json'}']"
    argv = [MONAI_MAIN, "run", "search", "--config_file", files, "--meta_file", "m.json", "--pruning#epsilon", "0.3",
            "--train#dataloader#sampler", "x", "--epochs=3", "--logging_file", "l.conf"]  # fmt: skip
    check_cli_overrides(argv)  # nothing raised
    # a key only an overlay defines is unknown without the overlay
    assert [k for k, _ in unknown_overrides(["--config_file", f"['{BUNDLE / 'train.json'}','{BUNDLE / 'search.json'}']",
                                             "--train#dataloader#sampler", "x"])] == ["train#dataloader#sampler"]  # fmt: skip


def test_other_processes_are_not_checked():
    check_cli_overrides(["pytest", "run", "--config_file", str(BUNDLE / "train.json"), "--epochz", "1"])


@pytest.mark.parametrize("workflow", ["train", "search", "retrain", "evaluate", "inference"])
def test_every_workflow_checks_its_overrides_first(workflow):

    first = load_merged(BUNDLE / f"{workflow}.json")["initialize"][0]
    assert "check_cli_overrides" in first


@pytest.mark.slow  # a real python -m monai.bundle run process
def test_monai_bundle_run_refuses_a_typo_before_training(tmp_path):
    import subprocess

    proc = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "--config_file", str(BUNDLE / "train.json"),
                           "--bundle_root", str(tmp_path), "--dataset_dir", str(tmp_path / "none"), "--epochz", "1"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("error: unknown override --epochz")
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "cache").exists() and not (tmp_path / "models").exists()


def test_monais_double_colon_separator_and_meta_overrides_pass():
    train = str(BUNDLE / "train.json")
    assert unknown_overrides(["--config_file", train, "--train::trainer::max_epochs", "2", "--_meta_#version", "9"]) == []


def test_a_hint_to_run_another_workflow_first_keeps_the_users_own_folders():
    from iac_components.bundles.overrides import run_first_hint

    argv = [MONAI_MAIN, "run", "search", "--config_file", "c.json", "--ckpt_dir", "/tmp/X", "--epochs", "3",
            "--dataset_dir=/data/acdc", "--spacing", "[2.0, 2.0]"]  # fmt: skip
    hint = run_first_hint("train", "bundles/acdc_iac", argv)
    assert hint.startswith("python -m monai.bundle run --config_file ") and "configs/train.json" in hint
    assert "--ckpt_dir /tmp/X" in hint and "--dataset_dir /data/acdc" in hint and "--spacing '[2.0, 2.0]'" in hint
    assert "--epochs" not in hint  # the search's own budget is not the baseline's


@pytest.mark.parametrize("workflow", ["train", "search", "retrain", "evaluate", "inference"])
def test_a_cuda_device_without_a_gpu_is_one_line(workflow):

    import torch

    init = load_merged(BUNDLE / f"{workflow}.json")["initialize"]
    assert any("no CUDA device is available here" in e for e in init)
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    from monai.bundle import ConfigParser

    parser = ConfigParser({"device": "cuda", "check": next(e for e in init if "no CUDA device" in e)})
    parser.parse()
    with pytest.raises(SystemExit, match=r"error: --device cuda: no CUDA device is available here"):
        parser.get_parsed_content("check")


def test_the_id_a_command_runs_may_be_defined_on_its_command_line():
    """``run where --where '$print(...)'`` defines what it runs (a MONAI idiom); other new keys are still refused."""
    train = str(BUNDLE / "train.json")
    assert unknown_overrides(["where", "--config_file", train, "--where", "$print(1)"]) == []
    assert unknown_overrides(["--run_id", "probe", "--config_file", train, "--probe", "$print(1)"]) == []
    assert [k for k, _ in unknown_overrides(["where", "--config_file", train, "--where", "1", "--epochz", "1"])] == ["epochz"]
