"""``emoshift predict --backend torch`` on a CNN run imports only what the CNN needs: not Lightning (training
only), not transformers (the saved ResNet loads into emoshift.models.resnet_plain), not scikit-learn, openSMILE,
MLflow or Optuna. Checked in a fresh process through sys.modules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.robustness.badfiles import _wav, speechlike

NOT_NEEDED = ("lightning", "pytorch_lightning", "transformers", "sklearn", "opensmile", "mlflow", "optuna",
              "emoshift.training", "emoshift.training.fit", "emoshift.training.module", "emoshift.data.datasets")

SCRIPT = """
import json, sys
from emoshift.cli import app
app(["predict", sys.argv[1], sys.argv[2], "--format", "json", "--backend", "torch"], standalone_mode=False)
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {n.split(".")[0] for n in sys.argv[3:]})))
"""


def test_torch_predict_of_a_cnn_imports_only_what_it_needs(cnn_run: Path, tmp_path: Path) -> None:
    clip = tmp_path / "voice.wav"
    _wav(clip, speechlike(seconds=2.0))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(cnn_run), str(clip), *NOT_NEEDED], capture_output=True,
                       text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    *answer, modules = r.stdout.strip().splitlines()
    assert json.loads("\n".join(answer))[0]["status"] == "ok"
    loaded = set(json.loads(modules))
    assert not loaded & set(NOT_NEEDED), sorted(loaded & set(NOT_NEEDED))
