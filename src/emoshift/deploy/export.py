"""``emoshift export``: a run (or the member runs of an ensemble) -> ``model.onnx`` that checks itself.

The graph (:class:`emoshift.deploy.graph.ServingModel`) is exported with ``torch.onnx.export(dynamo=True)``, opset
18, batch and sample axes dynamic. Its metadata carries the :class:`~emoshift.deploy.meta.ModelMeta` record
(``emoshift`` key) and the labels (``labels`` key, JSON), so onnxruntime alone can use it.

Self-check, written to ``<output>.json`` and printed: every readable test file of the run(s) (the held-out
speakers of each training corpus, from ``RUN/predictions/<corpus>.csv``) is scored in windows by the torch graph
and by onnxruntime; ``parity.max_abs_diff`` is the largest difference of any probability. Above
:data:`TOLERANCE` the export fails and no model is left behind. ``--quantize int8`` (onnxruntime dynamic
quantisation of the network's weights; the log-mel front end stays float) writes the int8 graph instead and
reports the UAR of the float and int8 graphs on the same files.

A k-fold run (RUN/folds/<i>/, model.json "members") exports its fold ensemble; naming several runs exports
their ensemble. Probabilities are the members' mean.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emoshift.core.errors import EmoshiftError
from emoshift.core.io import atomic_write_json, disk_full, read_csv
from emoshift.core.rundir import RunDir
from emoshift.deploy.backend import onnx_path
from emoshift.deploy.meta import META_KEY, ModelMeta

TOLERANCE = 1e-4
OPSET = 18
FORMATS = ("onnx",)
QUANTIZE = ("int8",)
EXPORT_TMP_PREFIX = ".emoshift-export-"  # the exporter's temp folder beside its output


class ExportError(EmoshiftError):
    """The export cannot be done or failed its self-check (one-line message)."""


@dataclass(frozen=True)
class TestFile:
    path: str
    true: str


def report_path(out: Path) -> Path:
    return out.with_name(out.name + ".json")  # model.onnx -> model.onnx.json (model.json is the run's)


def test_files(runs: list[Path], *, limit: int) -> list[TestFile]:
    """The held-out test files of each run's training corpora (union over members), spread over the list."""
    seen: dict[str, TestFile] = {}
    for run in runs:
        rd = RunDir.of(run)
        for corpus in rd.info().get("train_corpora", []):
            if not rd.predictions(corpus).is_file():
                continue
            for row in read_csv(rd.predictions(corpus)):
                seen.setdefault(row["path"], TestFile(row["path"], row["true"]))
    files = [seen[k] for k in sorted(seen)]
    if len(files) > limit:  # evenly spaced, so every speaker and label has its chance
        files = [files[int(i)] for i in np.linspace(0, len(files) - 1, limit).round()]
    return files


@contextlib.contextmanager
def _quiet() -> Any:
    """Silence the exporter's and quantiser's chatter (warnings, logging, prints); errors still raise."""
    root, onnx_log = logging.getLogger(), logging.getLogger("torch.onnx")
    levels = root.level, onnx_log.level
    root.setLevel(logging.ERROR)
    onnx_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(levels[0])
        onnx_log.setLevel(levels[1])


def _export_graph(model: Any, meta: ModelMeta, out: Path, *, target: Path | None = None) -> None:
    import onnx
    import torch

    waveform = torch.randn(2, 16_000) * 0.1  # (B, S): shapes are symbolic in the graph
    batch, samples = torch.export.Dim("batch"), torch.export.Dim("samples", min=800)
    if meta.input_kind == "waveform":
        args: tuple[Any, ...] = (waveform, torch.ones(2, 16_000, dtype=torch.long))
        dynamic: dict[str, Any] = {"wave": {0: batch, 1: samples}, "mask": {0: batch, 1: samples}}
    else:
        args, dynamic = (waveform,), {"wave": {0: batch, 1: samples}}
    tmp = out.with_name(f".{out.name}.export.tmp")
    try:
        with _quiet():
            torch.onnx.export(model, args, str(tmp), input_names=list(meta.inputs),
                              output_names=["logits", "probabilities"], dynamic_shapes=dynamic, dynamo=True,
                              opset_version=OPSET, external_data=False, verbose=False)
        proto = onnx.load(str(tmp))
        for key, value in ((META_KEY, meta.to_json()), ("labels", json.dumps(list(meta.labels)))):
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        proto.doc_string = f"emoshift {meta.model}: 16 kHz waveform -> logits, probabilities over {list(meta.labels)}"
        onnx.save(proto, str(tmp))
        os.replace(tmp, out)
    except Exception as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, EmoshiftError):
            raise
        full = disk_full(e, target or out)  # ENOSPC: one line naming the model file, not "export failed"
        if full is not None:
            raise full from None
        raise ExportError(f"torch.onnx.export failed for {meta.model}: {type(e).__name__}: {str(e).splitlines()[0][:300]}") from None


def _quantize(src: Path, dst: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    front = [n.name for n in onnx.load(str(src)).graph.node if any(".front." in i for i in n.input)]
    with _quiet():
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, nodes_to_exclude=front)


def _score_files(backend: Any, files: list[TestFile]) -> tuple[list[np.ndarray], list[str | None], list[str]]:
    """Per file: the segments' probability matrix and the file-level label (None where unreadable)."""
    from emoshift.core.audio import AudioError
    from emoshift.deploy.audio_stream import file_blocks
    from emoshift.deploy.segments import score

    mats: list[np.ndarray] = []
    labels: list[str | None] = []
    problems: list[str] = []
    for f in files:
        try:
            r = score(backend, file_blocks(f.path))
        except AudioError as e:
            mats.append(np.zeros((0, len(backend.meta.labels))))
            labels.append(None)
            problems.append(f"{Path(f.path).name}: {e}")
            continue
        mats.append(np.array([[s.probabilities[k] for k in backend.meta.labels] for s in r.segments]))
        labels.append(r.label)
    return mats, labels, problems


def _uar(files: list[TestFile], pred: list[str | None], labels: tuple[str, ...]) -> float | None:
    from emoshift.evaluation.metrics import classification_metrics

    pairs = [(f.true, p) for f, p in zip(files, pred, strict=True) if p is not None and f.true in labels]
    if not pairs:
        return None
    return float(classification_metrics([t for t, _ in pairs], [p for _, p in pairs], list(labels))["uar"])


def _max_diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    diffs = [float(np.abs(x - y).max()) for x, y in zip(a, b, strict=True) if x.size and x.shape == y.shape]
    return max(diffs) if diffs else float("nan")


def export_runs(
    runs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str] | None = None,
    *,
    fmt: str = "onnx",
    quantize: str | None = None,
    max_files: int = 64,
) -> dict[str, Any]:
    """Export ``runs`` (one run, or an ensemble's members) to ``out`` (default RUN/model.onnx); returns the report."""
    from emoshift.deploy.graph import build_serving_model, member_runs
    from emoshift.deploy.onnx_backend import OnnxBackend
    from emoshift.deploy.torch_backend import TorchBackend

    if fmt not in FORMATS:
        raise ExportError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if quantize is not None and quantize not in QUANTIZE:
        raise ExportError(f"--quantize must be one of {', '.join(QUANTIZE)}, got {quantize!r}")
    if not runs:
        raise ExportError("name at least one run directory")
    paths = [Path(r) for r in runs]
    for p in paths:
        if not RunDir.of(p).is_complete():
            raise ExportError(f"{p} is not a finished run directory (done.json, model.json or weights missing)")
    target = Path(out) if out is not None else onnx_path(paths[0])
    target.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    model, info = build_serving_model(paths)
    # a fold ensemble counts its folds, and the file belongs to the run that was exported (its fingerprint)
    top = RunDir.of(paths[0]).info() if len(paths) == 1 else info
    meta = ModelMeta.from_info({**info, "config_fingerprint": top.get("config_fingerprint")},
                               members=len(member_runs(paths)))
    torch_backend = TorchBackend(paths)
    torch_backend.preload(model, meta)  # the very module that is exported
    for stale in target.parent.glob(f"{EXPORT_TMP_PREFIX}*"):  # what a killed export left (SIGKILL skips cleanup)
        shutil.rmtree(stale, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix=EXPORT_TMP_PREFIX, dir=target.parent) as tmp:
        float_path = Path(tmp) / "model.onnx"
        _export_graph(model, meta, float_path, target=target)
        files = test_files(paths, limit=max_files)
        ref, ref_labels, problems = _score_files(torch_backend, files)
        got, got_labels, _ = _score_files(OnnxBackend(float_path), files)
        parity = _max_diff(ref, got)
        report: dict[str, Any] = {
            "output": str(target), "format": fmt, "opset": OPSET, "runs": [str(p) for p in paths],
            "members": meta.members, "model": meta.model, "input_kind": meta.input_kind, "labels": list(meta.labels),
            "inputs": list(meta.inputs), "outputs": ["logits", "probabilities"], "sample_rate": 16_000,
            "window_s": meta.window_s,
            "parity": {"max_abs_diff": parity, "tolerance": TOLERANCE, "ok": bool(parity <= TOLERANCE),
                       "files": sum(1 for lab in ref_labels if lab is not None),
                       "windows": int(sum(len(m) for m in ref)), "skipped": problems},
            "uar_torch": _uar(files, ref_labels, meta.labels), "uar_onnx": _uar(files, got_labels, meta.labels),
        }
        if not files or report["parity"]["files"] == 0:
            raise ExportError("no readable test files: the self-check needs the run's test files "
                              "(RUN/predictions/<corpus>.csv paths) where they were at training time")
        if not report["parity"]["ok"]:
            atomic_write_json(report_path(target), report)
            raise ExportError(f"ONNX probabilities differ from torch's by {parity:.2e} (> {TOLERANCE:g}); "
                              f"nothing exported, see {report_path(target)}")
        final = float_path
        if quantize == "int8":
            final = Path(tmp) / "model.int8.onnx"
            _quantize(float_path, final)
            q, q_labels, _ = _score_files(OnnxBackend(final), files)
            uar_f, uar_q = report["uar_onnx"], _uar(files, q_labels, meta.labels)
            report["quantize"] = {
                "mode": "int8", "uar_float": uar_f, "uar_int8": uar_q,
                "uar_change": None if uar_f is None or uar_q is None else uar_q - uar_f,
                "max_abs_diff_vs_float": _max_diff(got, q),
                "label_agreement": float(np.mean([a == b for a, b in zip(got_labels, q_labels, strict=True)
                                                  if a is not None])),
                "bytes_float": float_path.stat().st_size, "bytes_int8": final.stat().st_size,
            }
        os.replace(final, target)
    report["bytes"] = target.stat().st_size
    report["seconds"] = round(time.time() - t0, 2)
    atomic_write_json(report_path(target), report)
    return report
