"""`emoshift predict` on an exported run imports neither torch nor transformers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CHECK = """
import json, sys
from emoshift.cli import app
try:
    app(["predict", sys.argv[1], sys.argv[2], "--format", "json", "--backend", "onnx", "--vad"], standalone_mode=False)
finally:
    heavy = sorted(m for m in ("torch", "transformers", "lightning") if m in sys.modules)
    sys.stderr.write("HEAVY=" + json.dumps(heavy) + "\\n")
"""


def test_onnx_predict_path_is_torch_free(exported: tuple[Path, dict], synth_tiny: Path) -> None:
    run, _ = exported
    wav = sorted((synth_tiny / "ravdess").rglob("*.wav"))[0]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2] / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", CHECK, str(run), str(wav)], capture_output=True, text=True, env=env,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    heavy = json.loads(proc.stderr.split("HEAVY=")[1].splitlines()[0])
    assert heavy == [], f"the ONNX path imported {heavy}"
    out = json.loads(proc.stdout)
    assert out[0]["label"] in json.loads((run / "model.json").read_text())["labels"] and out[0]["segments"]
