"""A real MONAI Label 0.8.5 server on 127.0.0.1 with a bundle trained on synthetic data and packaged by
``iac bundles package``, served by the app ``iac monailabel app`` writes:

* ``/info/`` lists the bundle (segmentation, 3-D, its labels) and its trainer;
* ``/infer`` returns a label map in the input's grid and affine, with the bundle's label values, equal voxel for
  voxel to ``python -m monai.bundle run`` of ``inference.json`` on the same files;
* a one-epoch ``/train`` on one labelled study, and on two (where MONAI Label users start), finishes, rewrites
  ``models/model.ts``, and the next ``/infer`` runs the new model (equal again to ``monai.bundle run``, now on the
  fine-tuned model.ts).

MONAI Label runs in its own virtualenv (it pins numpy 1.26), built by ``tests/monailabel/make_venv.sh`` on first
use (about 7 minutes and 8 GB) and reused after (``IAC_MONAILABEL_VENV`` chooses where). The server is started in
its own process group and stopped by its PID however the test ends; every wait is bounded.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from bundle_utils import REPO, check_ok, monai_bundle
from launch_utils import free_port

from iac_components.bundles.package import package_bundle
from iac_components.monailabel import write_app

pytestmark = [pytest.mark.slow, pytest.mark.monailabel]

def _request(url: str, data: bytes | None = None, headers: dict | None = None, timeout: float = 120) -> bytes:
    req = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data is not None else "GET")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read()


class Server:
    def __init__(self, venv: Path, app: Path, studies: Path, models: str, work: Path):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = work / "server.log"
        (work / "tmp").mkdir()
        env = {
            **os.environ,
            "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",  # `monailabel` runs `python -m monailabel.main`
            "PYTHONPATH": str(REPO),  # iac_components for the trainer; inference runs on model.ts without it
            "MONAI_LABEL_DATASTORE_CACHE_PATH": str(work / "cache"),
            "TMPDIR": str(work / "tmp"),
            "OMP_NUM_THREADS": "1",
        }
        env.pop("VIRTUAL_ENV", None)
        cmd = [str(venv / "bin" / "monailabel"), "start_server", "--app", str(app), "--studies", str(studies),
               "--conf", "models", models, "--host", "127.0.0.1", "--port", str(self.port)]  # fmt: skip
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def wait_ready(self, timeout: float = 300) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"MONAI Label exited ({self.proc.returncode}):\n{self.tail()}")
            try:
                return json.loads(_request(self.base + "/info/", timeout=10))
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(2)
        raise AssertionError(f"MONAI Label not ready on {self.base} after {timeout} s:\n{self.tail()}")

    def infer(self, model: str, image: str, out: Path) -> Path:
        boundary = "iacboundary"
        body = (f'--{boundary}\r\nContent-Disposition: form-data; name="params"\r\n\r\n{{"result_dtype": "uint8"}}\r\n'
                f"--{boundary}--\r\n").encode()  # fmt: skip
        out.write_bytes(
            _request(f"{self.base}/infer/{model}?image={image}&output=image", body,
                     {"Content-Type": f"multipart/form-data; boundary={boundary}"}, timeout=300)
        )  # fmt: skip
        return out

    def train(self, model: str, timeout: float = 900, **request) -> dict:
        _request(f"{self.base}/train/{model}", json.dumps(request).encode(), {"Content-Type": "application/json"})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = json.loads(_request(self.base + "/train/?check_if_running=false", timeout=30))
            if status.get("status") in ("DONE", "ERROR"):
                return status
            time.sleep(3)
        raise AssertionError(f"/train did not finish in {timeout} s:\n{self.tail()}")

    def tail(self, n: int = 4000) -> str:
        return self.log.read_text()[-n:] if self.log.is_file() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=20)


def _bundle_run(bundle: Path, image: Path, out: Path) -> np.ndarray:
    """``python -m monai.bundle run`` of inference.json on model.ts, typed in the app's bundle folder."""
    check_ok(monai_bundle("run", "--config_file", "configs/inference.json", "--input", image, "--output_dir", out,
                          "--torchscript", "true", cwd=bundle))  # fmt: skip
    return np.asarray(nib.load(out / image.name).dataobj)


@pytest.mark.parametrize("labelled", [1, 2])
def test_monailabel_server_infers_and_trains(monailabel_venv, acdc_retrained, acdc_exported, tmp_path, labelled):
    raw = acdc_retrained.raw
    release = package_bundle(acdc_retrained.root, tmp_path / "release", ckpt_dir=acdc_exported,
                             cache_dir=acdc_retrained.root / "cache")  # fmt: skip
    app = tmp_path / "app"
    (name, bundle), = write_app(app, [release["zip"]]).items()  # fmt: skip
    bundle = Path(bundle)
    assert name == "acdc_iac" and not (bundle / "models" / "model.pt").exists()

    studies = tmp_path / "studies"
    (studies / "labels" / "final").mkdir(parents=True)
    for image in sorted(raw.glob("training/*/*_frame01.nii.gz"))[:labelled]:  # labelled studies for /train
        shutil.copy2(image, studies / image.name)
        shutil.copy2(
            image.with_name(image.name.replace(".nii.gz", "_gt.nii.gz")), studies / "labels/final" / image.name
        )
    query = raw / "testing" / "patient102" / "patient102_frame01.nii.gz"  # an unlabelled study for /infer
    shutil.copy2(query, studies / query.name)
    study_id = query.name[: -len(".nii.gz")]

    server = Server(monailabel_venv, app, studies, name, tmp_path)
    try:
        info = server.wait_ready()
        model = info["models"][name]
        assert model["type"] == "segmentation" and model["dimension"] == 3
        assert model["labels"] == {"rv": 1, "myo": 2, "lv": 3}
        assert name in info["trainers"]

        src = nib.load(query)
        label = nib.load(server.infer(name, study_id, tmp_path / "label.nii.gz"))
        assert label.shape == src.shape
        np.testing.assert_allclose(label.affine, src.affine, atol=1e-4)
        served = np.asarray(label.dataobj)
        assert set(np.unique(served).tolist()) <= {0, 1, 2, 3} and served.any()
        np.testing.assert_array_equal(served, _bundle_run(bundle, query, tmp_path / "bundle_run"))

        ts = bundle / "models" / "model.ts"
        before = (ts.stat().st_mtime_ns, ts.read_bytes())
        status = server.train(name, max_epochs=1)
        assert status["status"] == "DONE", "\n".join(status.get("details", [])[-40:]) + server.tail()
        assert (bundle / "models" / "model.pt").is_file()
        assert ts.stat().st_mtime_ns != before[0] and ts.read_bytes() != before[1]

        after = np.asarray(nib.load(server.infer(name, study_id, tmp_path / "label2.nii.gz")).dataobj)
        np.testing.assert_array_equal(after, _bundle_run(bundle, query, tmp_path / "bundle_run2"))
        assert "Reload model" in server.tail(10**7)  # the server reloaded model.ts, not a cached network
    except Exception:
        print(server.tail())
        raise
    finally:
        server.stop()
    assert server.proc.returncode is not None
