"""``emoshift export``: a run (or the member runs of an ensemble) -> ``model.onnx`` that checks itself.

The graph (:class:`emoshift.deploy.graph.ServingModel`) is exported with ``torch.onnx.export(dynamo=True)``, opset
18, batch and sample axes dynamic. Its metadata carries the :class:`~emoshift.deploy.meta.ModelMeta` record
(``emoshift`` key) and the labels (``labels`` key, JSON), so onnxruntime alone can use it.

Self-check, written to ``<output>.json`` and printed: every readable test file of the run(s) (the held-out
speakers of each training corpus, from ``RUN/predictions/<corpus>.csv``; each decoded once) is scored in windows
by the torch graph in float32, by a float64 copy of it, and by onnxruntime. Two float32 implementations of one
network differ by about as much as float32 arithmetic moves its outputs, which depends on the network and the
audio (a deep, confident network on 48 kHz speech moves more than a small one on a synthetic tone), so:

- ``parity.float32_error``: the largest ``|p_torch32 - p_torch64|`` of any output, how far float32 alone moves
  this network on these windows;
- ``parity.tolerance``: ``--tolerance`` when given, else ``max(TOLERANCE_FLOOR, FLOAT32_FACTOR * float32_error)``;
  the export fails when ``parity.max_abs_diff`` (the largest ``|p_onnx - p_torch|``) is above it;
- categorical models: the window labels of both graphs must agree except at near-ties, windows whose two most
  probable classes are within ``parity.near_tie`` (``2 * max(TOLERANCE_FLOOR, FLOAT32_FACTOR *
  float32_error)``: float32 noise can swap them) in torch; ``--tolerance`` does not relax this;
- ``parity.failing``: the windows that broke either rule (file, start-end seconds, difference, both labels),
  worst first, so a refusal names what to listen to.

Where it fails, no model is left behind (the report is still written). ``--quantize int8`` (onnxruntime dynamic
quantisation of the network's weights; the log-mel front end stays float) checks the float graph as above, then
writes the int8 graph and reports its own parity against torch (``quantize.parity``: difference, label
agreement) and the UAR of the float and int8 graphs on the same files; the int8 graph is not held to the float32
tolerance (quantisation changes outputs by design).

A k-fold run (RUN/folds/<i>/, model.json "members") exports its fold ensemble; naming several runs exports
their ensemble. Probabilities are the members' mean.

A dimensional run (model.json ``task: dimensional``) exports one output, ``values`` ``(B, T)`` (its targets,
listed in the ``targets`` metadata key, on its ``target_range``); the self-check compares those values, and
reports the mean CCC of the file-level values against the test files' ratings (``ccc_torch``, ``ccc_onnx``) in
place of the UAR.

Progress (:mod:`emoshift.core.progress`) is shown per step: tracing the graph (torch.export and its
decompositions: most of an export's time for a CNN), then each graph's pass over the test files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
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

TOLERANCE_FLOOR = 1e-4  # the least |p_onnx - p_torch| tolerated, however exact float32 is on the files
FLOAT32_FACTOR = 10.0  # tolerance = this many times float32's own error (two float32 kernels differ by ~2x it)
MAX_FAILING = 20  # failing windows named in the report
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


def _export_graph(model: Any, meta: ModelMeta, out: Path, *, target: Path | None = None, reuse: bool = True) -> bool:
    """Write ``model``'s ONNX graph to ``out``; returns whether a kept graph of its structure was reused
    (:mod:`emoshift.deploy.traced`) instead of tracing it."""
    import onnx
    import torch

    from emoshift.deploy import traced

    waveform = torch.randn(2, 16_000) * 0.1  # (B, S): shapes are symbolic in the graph
    batch, samples = torch.export.Dim("batch"), torch.export.Dim("samples", min=800)
    if meta.input_kind == "waveform":
        args: tuple[Any, ...] = (waveform, torch.ones(2, 16_000, dtype=torch.long))
        dynamic: dict[str, Any] = {"wave": {0: batch, 1: samples}, "mask": {0: batch, 1: samples}}
    else:
        args, dynamic = (waveform,), {"wave": {0: batch, 1: samples}}
    axes = {name: "batch, samples >= 800" for name in dynamic}  # the Dims above, written down for the key
    key = traced.structure_key(model, f"opset {OPSET}, inputs {meta.inputs}, outputs {meta.graph_outputs}, axes {axes}")
    tmp = out.with_name(f".{out.name}.export.tmp")
    try:
        with _quiet():
            program = traced.load(key, model) if reuse and key is not None else None
            reused = program is not None
            if program is None:
                program = torch.onnx.export(model, args, None, input_names=list(meta.inputs),
                                            output_names=list(meta.graph_outputs), dynamic_shapes=dynamic,
                                            dynamo=True, opset_version=OPSET, optimize=False, verbose=False)
                assert program is not None  # dynamo=True always returns the ONNXProgram
                if key is not None:
                    traced.keep(key, program, model)
            program.optimize()
            program.save(str(tmp), external_data=False)
        proto = onnx.load(str(tmp))
        props = [(META_KEY, meta.to_json()), ("labels", json.dumps(list(meta.labels)))]
        if meta.task_kind.rated:
            props.append(("targets", json.dumps(list(meta.targets))))
        for name, value in props:
            entry = proto.metadata_props.add()
            entry.key, entry.value = name, value
        proto.doc_string = (
            f"emoshift {meta.model}: 16 kHz waveform -> values (B, T) of {list(meta.targets)} on {meta.target_range}"
            if meta.task_kind.rated else
            f"emoshift {meta.model}: 16 kHz waveform -> logits, probabilities over {list(meta.labels)}"
        )
        onnx.save(proto, str(tmp))
        os.replace(tmp, out)
        return reused
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


@dataclass
class Scores:
    """One graph's pass over the test files: per file the windows' output matrix ``(n_windows, C or T)``
    (empty where unreadable) and the file-level result (:class:`emoshift.deploy.segments.FileScore`, or None)."""

    mats: list[np.ndarray]
    results: list[Any]


def score_files(
    backends: Sequence[Any], files: list[TestFile], *, show: bool = False, what: str = "self-check"
) -> tuple[list[Scores], list[str]]:
    """Score every file with every backend, decoding (and resampling) each file once; returns each backend's
    :class:`Scores` and the unreadable files (``name: reason``)."""
    from emoshift.core.audio import AudioError
    from emoshift.core.progress import progress
    from emoshift.deploy.audio_stream import file_blocks
    from emoshift.deploy.segments import score

    names = backends[0].meta.outputs
    out = [Scores([], []) for _ in backends]
    problems: list[str] = []
    names_of = ", ".join(b.name for b in backends)
    with progress(len(files), f"{what}: {names_of}", enabled=show) as advance:
        for f in files:
            try:
                decoded = list(file_blocks(f.path)())  # 16 kHz blocks, replayed to every backend
                scored = [score(b, functools.partial(iter, decoded)) for b in backends]
            except AudioError as e:
                for s in out:
                    s.mats.append(np.zeros((0, len(names))))
                    s.results.append(None)
                problems.append(f"{Path(f.path).name}: {e}")
                advance(1)
                continue
            for s, r in zip(out, scored, strict=True):
                rows = [seg.values if seg.values is not None else seg.probabilities for seg in r.segments]
                s.mats.append(np.array([[row[k] for k in names] for row in rows], np.float64))
                s.results.append(r)
            advance(1)
    return out, problems


def _window_name(f: TestFile, seg: Any) -> str:
    return f"{Path(f.path).name}@{seg.start_s:.2f}-{seg.end_s:.2f}s"


def parity_check(
    files: list[TestFile], ref: Scores, got: Scores, exact: Scores, meta: ModelMeta, *,
    tolerance: float | None = None,
) -> dict[str, Any]:
    """``got`` (onnx) against ``ref`` (torch float32), with ``exact`` (torch float64) measuring float32's own
    error; see the module docstring for the rules. Returns the report's ``parity`` section."""
    float32_error = _max_diff(ref.mats, exact.mats)
    auto = max(TOLERANCE_FLOOR, FLOAT32_FACTOR * float32_error) if np.isfinite(float32_error) else TOLERANCE_FLOOR
    tol = auto if tolerance is None else float(tolerance)
    near_tie = 2.0 * auto
    failing: list[dict[str, Any]] = []
    windows = agree = ties = 0
    for f, r_ref, m_ref, m_got in zip(files, ref.results, ref.mats, got.mats, strict=True):
        if r_ref is None or m_ref.shape != m_got.shape:
            continue
        for seg, p_ref, p_got in zip(r_ref.segments, m_ref, m_got, strict=True):
            windows += 1
            diff = float(np.abs(p_ref - p_got).max())
            entry: dict[str, Any] = {"window": _window_name(f, seg), "max_abs_diff": diff}
            bad = diff > tol
            if not meta.task_kind.rated:
                top = np.sort(p_ref)[::-1]
                margin = float(top[0] - top[1]) if len(top) > 1 else 1.0
                l_ref, l_got = meta.labels[int(np.argmax(p_ref))], meta.labels[int(np.argmax(p_got))]
                agree += l_ref == l_got
                if l_ref != l_got and margin <= near_tie:
                    ties += 1
                elif l_ref != l_got:
                    bad = True
                entry.update(torch=l_ref, onnx=l_got, margin=margin)
            if bad:
                failing.append(entry)
    failing.sort(key=lambda e: -e["max_abs_diff"])
    parity: dict[str, Any] = {
        "graph": "float32", "max_abs_diff": _max_diff(ref.mats, got.mats), "float32_error": float32_error,
        "onnx_error": _max_diff(got.mats, exact.mats), "tolerance": tol,
        "tolerance_from": "--tolerance" if tolerance is not None else f"max({TOLERANCE_FLOOR:g}, "
                                                                      f"{FLOAT32_FACTOR:g} x float32_error)",
        "ok": not failing, "files": sum(1 for r in ref.results if r is not None), "windows": windows,
        "failing_windows": len(failing), "failing": failing[:MAX_FAILING],
    }
    if not meta.task_kind.rated:
        parity.update(near_tie=near_tie, label_agreement=agree / windows if windows else None, near_tie_flips=ties)
    return parity


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
    float_path: Path, final: Path, files: list[TestFile], ref: Scores, got: Scores, meta: ModelMeta,
    score_key: str, *, show: bool,
) -> dict[str, Any]:
    """The int8 graph against torch and the float graph on the same files: its own parity (difference, label
    agreement with torch), the score change, sizes."""
    from emoshift.deploy.onnx_backend import OnnxBackend

    (q,), _ = score_files([OnnxBackend(final)], files, show=show, what="self-check int8")
    s_f, s_q = _quality(files, got.results, meta), _quality(files, q.results, meta)
    parity: dict[str, Any] = {"graph": "int8", "max_abs_diff": _max_diff(ref.mats, q.mats),
                              "windows": int(sum(len(m) for m in q.mats))}
    if not meta.task_kind.rated:
        parity["label_agreement"] = _window_agreement(ref.mats, q.mats)
    out: dict[str, Any] = {
        "mode": "int8", "parity": parity, f"{score_key}_torch": _quality(files, ref.results, meta),
        f"{score_key}_float": s_f, f"{score_key}_int8": s_q,
        f"{score_key}_change": None if s_f is None or s_q is None else s_q - s_f,
        "max_abs_diff_vs_float": _max_diff(got.mats, q.mats),
        "bytes_float": float_path.stat().st_size, "bytes_int8": final.stat().st_size,
    }
    if not meta.task_kind.rated:  # file labels of the int8 graph against the float graph's
        pairs = zip(_labels(got.results), _labels(q.results), strict=True)
        out["label_agreement"] = float(np.mean([a == b for a, b in pairs if a is not None]))
    return out


def _window_agreement(a: list[np.ndarray], b: list[np.ndarray]) -> float | None:
    """The share of windows whose most probable class is the same in both."""
    same = [np.argmax(x, axis=1) == np.argmax(y, axis=1) for x, y in zip(a, b, strict=True) if x.size and x.shape == y.shape]
    return float(np.concatenate(same).mean()) if same else None


def export_runs(
    runs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str] | None = None,
    *,
    fmt: str = "onnx",
    quantize: str | None = None,
    max_files: int = 64,
    tolerance: float | None = None,
    reuse_graph: bool = True,
    progress: bool = False,
) -> dict[str, Any]:
    """Export ``runs`` (one run, or an ensemble's members) to ``out`` (default RUN/model.onnx); returns the report.

    ``tolerance``: the largest ``|p_onnx - p_torch|`` accepted (default: from float32's own error, see the module
    docstring); ``reuse_graph``: put the weights into a kept graph of the same structure instead of tracing
    (:mod:`emoshift.deploy.traced`; the report's ``graph`` says which); ``progress``: show each step
    (:mod:`emoshift.core.progress`)."""
    from emoshift.deploy.graph import build_serving_model, member_runs
    from emoshift.deploy.torch_backend import TorchBackend

    _check_options(fmt, quantize, tolerance)
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
    top = RunDir.of(paths[0]).info() if len(paths) == 1 else info  # the file belongs to the run exported
    meta = ModelMeta.from_info(info, members=len(member_runs(paths)))  # a fold ensemble counts its folds
    meta = dataclasses.replace(meta, config_fingerprint=top.config_fingerprint)
    torch_backend = TorchBackend(paths)
    torch_backend.preload(model, meta)  # the very module that is exported
    exact = TorchBackend(paths, precision="float64")
    exact.preload(model, meta)  # a float64 copy of it: float32's own error
    for stale in target.parent.glob(f"{EXPORT_TMP_PREFIX}*"):  # what a killed export left (SIGKILL skips cleanup)
        shutil.rmtree(stale, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix=EXPORT_TMP_PREFIX, dir=target.parent) as tmp:
        float_path = Path(tmp) / "model.onnx"
        files = test_files(paths, limit=max_files)
        reused, (ref, got), parity = _export_checked(model, meta, float_path, files, (torch_backend, exact),
                                                     tolerance=tolerance, reuse=reuse_graph, target=target,
                                                     progress=progress)
        score_key = meta.task_kind.headline  # the graphs' quality on the test files: ccc or uar
        report: dict[str, Any] = {
            "output": str(target), "format": fmt, "opset": OPSET, "runs": [str(p) for p in paths],
            "members": meta.members, "model": meta.model, "input_kind": meta.input_kind, "labels": list(meta.labels),
            "task": meta.task, "inputs": list(meta.inputs), "outputs": list(meta.graph_outputs),
            "sample_rate": 16_000, "window_s": meta.window_s, "graph": "reused" if reused else "traced",
            "parity": parity,
            f"{score_key}_torch": _quality(files, ref.results, meta),
            f"{score_key}_onnx": _quality(files, got.results, meta),
        }
        if meta.task_kind.rated:
            report.update(targets=list(meta.targets), target_range=list(meta.target_range or ()))
        if not files or parity["files"] == 0:
            raise ExportError("no readable test files: the self-check needs the run's test files "
                              "(RUN/predictions/<corpus>.csv paths) where they were at training time")
        if not parity["ok"]:
            atomic_write_json(report_path(target), report)
            raise ExportError(_refusal(parity, meta, report_path(target)))
        final = float_path
        if quantize == "int8":
            final = Path(tmp) / "model.int8.onnx"
            _quantize(float_path, final)
            report["quantize"] = _quantized_report(float_path, final, files, ref, got, meta, score_key, show=progress)
        os.replace(final, target)
    report["bytes"] = target.stat().st_size
    report["seconds"] = round(time.time() - t0, 2)
    atomic_write_json(report_path(target), report)
    return report


def _export_checked(model: Any, meta: ModelMeta, out: Path, files: list[TestFile], torch_backends: tuple[Any, Any],
                    *, tolerance: float | None, reuse: bool, target: Path, progress: bool) -> tuple[bool, Any, Any]:
    """Export ``model``'s graph to ``out`` and run the self-check (float32 torch, its float64 copy, the graph);
    returns (whether a kept graph was reused, (torch's scores, the graph's), the parity with its ``skipped``).
    A kept graph that fails the check is traced afresh and only the new graph scored again (torch's scores
    stay what they were; emoshift.deploy.traced)."""
    from emoshift.core.progress import progress as steps
    from emoshift.deploy.onnx_backend import OnnxBackend

    def graph(attempt: bool) -> bool:
        what = "the graph (kept for this structure, or traced)" if attempt else "trace the graph (torch.export)"
        with steps(1, f"export {meta.model}: {what}", enabled=progress, unit="graph") as done:
            reused = _export_graph(model, meta, out, target=target, reuse=attempt)
            done(1)
        return reused

    reused = graph(reuse)
    (ref, got, f64), problems = score_files([torch_backends[0], OnnxBackend(out), torch_backends[1]], files,
                                            show=progress)
    parity = parity_check(files, ref, got, f64, meta, tolerance=tolerance)
    if reused and not parity["ok"]:
        reused = graph(False)
        (got,), _ = score_files([OnnxBackend(out)], files, show=progress)
        parity = parity_check(files, ref, got, f64, meta, tolerance=tolerance)
    parity["skipped"] = problems
    return reused, (ref, got), parity


def _check_options(fmt: str, quantize: str | None, tolerance: float | None) -> None:
    if fmt not in FORMATS:
        raise ExportError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if quantize is not None and quantize not in QUANTIZE:
        raise ExportError(f"--quantize must be one of {', '.join(QUANTIZE)}, got {quantize!r}")
    if tolerance is not None and not (np.isfinite(tolerance) and tolerance > 0):
        raise ExportError(f"--tolerance must be a positive number, got {tolerance:g}")


def _refusal(parity: dict[str, Any], meta: ModelMeta, report: Path) -> str:
    """The one-line refusal: what failed, the worst window, how to proceed."""
    worst = parity["failing"][0]
    what = "values" if meta.task_kind.rated else "probabilities"
    flips = [e for e in parity["failing"] if e.get("torch") not in (None, e.get("onnx"))]
    why = (f"ONNX {what} differ from torch's by up to {parity['max_abs_diff']:.2e} (tolerance {parity['tolerance']:.2e}"
           f", float32's own error {parity['float32_error']:.2e})")
    if flips:
        why += f"; {len(flips)} window label(s) differ away from a near-tie"
    return (f"{why} in {parity['failing_windows']} of {parity['windows']} windows, worst {worst['window']}; nothing "
            f"exported, see {report} (accept larger differences with --tolerance)")
