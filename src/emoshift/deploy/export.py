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

A dimensional run (model.json ``task: dimensional``) exports one output, ``values`` ``(B, T)`` (its targets,
listed in the ``targets`` metadata key, on its ``target_range``); the self-check compares those values, and
reports the mean CCC of the file-level values against the test files' ratings (``ccc_torch``, ``ccc_onnx``) in
place of the UAR.
"""

from __future__ import annotations

import contextlib
import dataclasses
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
    true: str  # the label ("" for a dimensional run)
    ratings: tuple[float | None, ...] = ()  # a dimensional run's true_<t> per target (None: not rated)


def report_path(out: Path) -> Path:
    return out.with_name(out.name + ".json")  # model.onnx -> model.onnx.json (model.json is the run's)


def test_files(runs: list[Path], *, limit: int) -> list[TestFile]:
    """The held-out test files of each run's training corpora (union over members), spread over the list."""
    seen: dict[str, TestFile] = {}
    for run in runs:
        rd = RunDir.of(run)
        info = rd.info()
        targets = info.targets or [] if info.task_kind.rated else []
        for corpus in info.train_corpora:
            if not rd.predictions(corpus).is_file():
                continue
            for row in read_csv(rd.predictions(corpus)):
                ratings = tuple(float(row[f"true_{t}"]) if row.get(f"true_{t}") else None for t in targets)
                seen.setdefault(row["path"], TestFile(row["path"], row.get("true", ""), ratings))
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
                              output_names=list(meta.graph_outputs), dynamic_shapes=dynamic, dynamo=True,
                              opset_version=OPSET, external_data=False, verbose=False)
        proto = onnx.load(str(tmp))
        props = [(META_KEY, meta.to_json()), ("labels", json.dumps(list(meta.labels)))]
        if meta.task_kind.rated:
            props.append(("targets", json.dumps(list(meta.targets))))
        for key, value in props:
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        proto.doc_string = (
            f"emoshift {meta.model}: 16 kHz waveform -> values (B, T) of {list(meta.targets)} on {meta.target_range}"
            if meta.task_kind.rated else
            f"emoshift {meta.model}: 16 kHz waveform -> logits, probabilities over {list(meta.labels)}"
        )
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


def _score_files(backend: Any, files: list[TestFile]) -> tuple[list[np.ndarray], list[Any], list[str]]:
    """Per file: the segments' output matrix (probabilities, or a dimensional model's values) and the file-level
    result (:class:`emoshift.deploy.segments.FileScore`, None where unreadable)."""
    from emoshift.core.audio import AudioError
    from emoshift.deploy.audio_stream import file_blocks
    from emoshift.deploy.segments import score

    names = backend.meta.outputs
    mats: list[np.ndarray] = []
    results: list[Any] = []
    problems: list[str] = []
    for f in files:
        try:
            r = score(backend, file_blocks(f.path))
        except AudioError as e:
            mats.append(np.zeros((0, len(names))))
            results.append(None)
            problems.append(f"{Path(f.path).name}: {e}")
            continue
        rows = [s.values if s.values is not None else s.probabilities for s in r.segments]
        mats.append(np.array([[row[k] for k in names] for row in rows]))
        results.append(r)
    return mats, results, problems


def _labels(results: list[Any]) -> list[str | None]:
    return [None if r is None else r.label for r in results]


def _ccc(files: list[TestFile], results: list[Any], targets: tuple[str, ...]) -> float | None:
    """Mean CCC over targets of the file-level values against the files' ratings (files rated on every target)."""
    from emoshift.evaluation.regression import ccc

    pairs = [(f.ratings, r.values) for f, r in zip(files, results, strict=True)
             if r is not None and f.ratings and all(x is not None for x in f.ratings)]
    if len(pairs) < 2:
        return None
    each = [ccc([float(p[0][j]) for p in pairs], [p[1][t] for p in pairs]) for j, t in enumerate(targets)]  # type: ignore[arg-type]
    mean = float(np.mean(each))
    return mean if np.isfinite(mean) else None


def _quality(files: list[TestFile], results: list[Any], meta: ModelMeta) -> float | None:
    """The score the report gives each graph: mean CCC (dimensional) or UAR."""
    if meta.task_kind.rated:
        return _ccc(files, results, meta.targets)
    return _uar(files, _labels(results), meta.labels)


def _uar(files: list[TestFile], pred: list[str | None], labels: tuple[str, ...]) -> float | None:
    from emoshift.evaluation.metrics import classification_metrics

    pairs = [(f.true, p) for f, p in zip(files, pred, strict=True) if p is not None and f.true in labels]
    if not pairs:
        return None
    return float(classification_metrics([t for t, _ in pairs], [p for _, p in pairs], list(labels))["uar"])


def _max_diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    diffs = [float(np.abs(x - y).max()) for x, y in zip(a, b, strict=True) if x.size and x.shape == y.shape]
    return max(diffs) if diffs else float("nan")


def _quantized_report(
    float_path: Path, final: Path, files: list[TestFile], float_scored: tuple[list[np.ndarray], list[Any]],
    meta: ModelMeta, score_key: str,
) -> dict[str, Any]:
    """The int8 graph against the float one on the same files: score change, largest output difference, sizes."""
    from emoshift.deploy.onnx_backend import OnnxBackend

    got, got_results = float_scored
    q, q_results, _ = _score_files(OnnxBackend(final), files)
    s_f, s_q = _quality(files, got_results, meta), _quality(files, q_results, meta)
    out: dict[str, Any] = {
        "mode": "int8", f"{score_key}_float": s_f, f"{score_key}_int8": s_q,
        f"{score_key}_change": None if s_f is None or s_q is None else s_q - s_f,
        "max_abs_diff_vs_float": _max_diff(got, q),
        "bytes_float": float_path.stat().st_size, "bytes_int8": final.stat().st_size,
    }
    if not meta.task_kind.rated:
        pairs = zip(_labels(got_results), _labels(q_results), strict=True)
        out["label_agreement"] = float(np.mean([a == b for a, b in pairs if a is not None]))
    return out


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
    meta = dataclasses.replace(ModelMeta.from_info(info, members=len(member_runs(paths))),
                               config_fingerprint=top.config_fingerprint)
    torch_backend = TorchBackend(paths)
    torch_backend.preload(model, meta)  # the very module that is exported
    for stale in target.parent.glob(f"{EXPORT_TMP_PREFIX}*"):  # what a killed export left (SIGKILL skips cleanup)
        shutil.rmtree(stale, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix=EXPORT_TMP_PREFIX, dir=target.parent) as tmp:
        float_path = Path(tmp) / "model.onnx"
        _export_graph(model, meta, float_path, target=target)
        files = test_files(paths, limit=max_files)
        ref, ref_results, problems = _score_files(torch_backend, files)
        got, got_results, _ = _score_files(OnnxBackend(float_path), files)
        parity = _max_diff(ref, got)
        score_key = meta.task_kind.headline  # the graphs' quality on the test files: ccc or uar
        report: dict[str, Any] = {
            "output": str(target), "format": fmt, "opset": OPSET, "runs": [str(p) for p in paths],
            "members": meta.members, "model": meta.model, "input_kind": meta.input_kind, "labels": list(meta.labels),
            "task": meta.task, "inputs": list(meta.inputs), "outputs": list(meta.graph_outputs),
            "sample_rate": 16_000, "window_s": meta.window_s,
            "parity": {"max_abs_diff": parity, "tolerance": TOLERANCE, "ok": bool(parity <= TOLERANCE),
                       "files": sum(1 for r in ref_results if r is not None),
                       "windows": int(sum(len(m) for m in ref)), "skipped": problems},
            f"{score_key}_torch": _quality(files, ref_results, meta),
            f"{score_key}_onnx": _quality(files, got_results, meta),
        }
        if meta.task_kind.rated:
            report.update(targets=list(meta.targets), target_range=list(meta.target_range or ()))
        if not files or report["parity"]["files"] == 0:
            raise ExportError("no readable test files: the self-check needs the run's test files "
                              "(RUN/predictions/<corpus>.csv paths) where they were at training time")
        if not report["parity"]["ok"]:
            atomic_write_json(report_path(target), report)
            raise ExportError(f"ONNX {meta.output} differ from torch's by {parity:.2e} (> {TOLERANCE:g}); "
                              f"nothing exported, see {report_path(target)}")
        final = float_path
        if quantize == "int8":
            final = Path(tmp) / "model.int8.onnx"
            _quantize(float_path, final)
            report["quantize"] = _quantized_report(float_path, final, files, (got, got_results), meta, score_key)
        os.replace(final, target)
    report["bytes"] = target.stat().st_size
    report["seconds"] = round(time.time() - t0, 2)
    atomic_write_json(report_path(target), report)
    return report
