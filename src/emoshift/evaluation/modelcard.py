"""The model card: ``RUN/README.md`` in the Hugging Face model-card layout, and the same facts as a dict
(``GET /v1/model``), read from model.json, splits/, metrics/, done.json and audit/ when present (no torch).

Sections: YAML front matter (library, tags, metrics), model details, training data with counts, protocol,
results with 95% confidence intervals per corpus, fairness summary, intended use, limitations, how to use it
(emoshift, and onnxruntime alone).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from emoshift.core.io import atomic_write_text, read_csv
from emoshift.core.record import ModelRecord
from emoshift.core.rundir import RunDir
from emoshift.core.task import task_named
from emoshift.evaluation.metrics import with_ci

README = "README.md"
ACTED = {"ravdess", "crema-d", "tess", "savee", "emodb"}  # corpora of actors reading fixed sentences


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def _training_data(rd: RunDir, info: ModelRecord) -> list[dict[str, Any]]:
    out = []
    for corpus in info.train_corpora:
        rows = read_csv(rd.split(corpus)) if rd.split(corpus).is_file() else []
        utts = Counter(r["split"] for r in rows)
        speakers = {part: len({r["speaker"] for r in rows if r["split"] == part}) for part in utts}
        out.append({"corpus": corpus, "utterances": dict(utts), "speakers": speakers})
    return out


def _metrics(rd: RunDir) -> list[dict[str, Any]]:
    out = []
    for corpus in rd.metrics_corpora():
        m = _json(rd.metrics(corpus))
        if task_named(m.get("task")).rated:
            out.append(_dimensional_metrics(m, corpus))
            continue
        ci = m.get("ci95") or {}  # null below 5 test speakers, with ci95_reason
        out.append({
            "corpus": m.get("corpus", corpus), "split": m.get("split"), "n": m.get("n"),
            "speakers": m.get("speakers"), "leaky": m.get("leaky"), "ci95_reason": m.get("ci95_reason"),
            **{k: {"value": m.get(k), "ci95": ci.get(k), "speakers": m.get("speakers")}
               for k in ("uar", "accuracy", "macro_f1")},
        })
    return out


def _dimensional_metrics(m: dict[str, Any], corpus: str) -> dict[str, Any]:
    """CCC (mean over targets) and each target's CCC, with their intervals (null below 5 speakers)."""
    per = m.get("per_target") or {}
    row: dict[str, Any] = {
        "corpus": m.get("corpus", corpus), "split": m.get("split"), "n": m.get("n"), "speakers": m.get("speakers"),
        "leaky": m.get("leaky"), "ci95_reason": m.get("ci95_reason"), "ratings": m.get("ratings", True),
        "ccc": {"value": m.get("ccc"), "ci95": (m.get("ci95") or {}).get("ccc"), "speakers": m.get("speakers")},
    }
    for t in m.get("targets", []):
        entry = per.get(t) or {}
        row[f"{t}_ccc"] = {"value": entry.get("ccc"), "ci95": (entry.get("ci95") or {}).get("ccc"),
                           "speakers": m.get("speakers")}
    return row


def _fairness(rd: RunDir) -> list[dict[str, Any]]:
    folder = rd.audit_dir
    if not folder.is_dir():
        return []
    from emoshift.evaluation.audit import verdict

    out = []
    for p in sorted(folder.glob("*.json")):
        report = _json(p)
        sentences = [verdict(key, section) for key, section in report.get("by", {}).items()]
        out.append({"corpus": report.get("corpus", p.stem), "summary": sentences})
    return out


def model_summary(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """What the service's ``GET /v1/model`` answers."""
    rd = RunDir.of(run_dir)
    info, done = rd.info(), rd.done_info()
    return {
        "task": info.task_kind.name,
        "labels": info.labels,
        **({"targets": info.targets, "target_range": info.target_range} if info.targets is not None else {}),
        "family": {"model": info.model, "input_kind": info.input_kind, "architecture": info.architecture},
        "training_data": _training_data(rd, info),
        "protocol": {
            "split": "speaker-independent train/val/test per corpus (no test speaker seen in training)"
            if not info.leaky_split else "LEAKY: some test speakers were seen in training",
            "leaky": info.leaky_split,
            "label_policy": info.label_policy,
            "training_speakers": len(info.training_speakers),
            "epochs_run": done.get("epochs_run"),
            "samples": done.get("samples"),
            "label_counts": done.get("label_counts"),
            "distill_teacher": info.distill_teacher,
            "speaker_norm": bool(info.speaker_norm),
        },
        "metrics": _metrics(rd),
        "fairness": _fairness(rd),
        "window_s": float(info.features.get("crop_s", 3.0)),
    }


def _fmt(metric: dict[str, Any]) -> str:
    v, ci = metric.get("value"), metric.get("ci95")
    if v is None:
        return "no ratings" if metric.get("ratings") is False else "–"
    return with_ci(v, ci, metric.get("speakers"))


def _categorical_results(s: dict[str, Any]) -> list[str]:
    lines = ["| corpus | split | n | speakers | UAR | accuracy | macro-F1 |", "| --- | --- | ---: | ---: | --- | --- | --- |"]
    for m in s["metrics"]:
        split = f"{m['split']}{' (LEAKY)' if m['leaky'] else ''}"
        lines.append(f"| {m['corpus']} | {split} | {m['n']} | {m['speakers']} | {_fmt(m['uar'])} | "
                     f"{_fmt(m['accuracy'])} | {_fmt(m['macro_f1'])} |")
    return lines


def _dimensional_results(s: dict[str, Any]) -> list[str]:
    """Concordance correlation (CCC) per target and its mean over targets."""
    targets = s["targets"]
    lines = ["CCC: Lin's concordance correlation coefficient (1 = predictions equal the ratings, 0 = no agreement).", "",
             "| corpus | split | n | speakers | CCC (mean) | " + " | ".join(f"{t} CCC" for t in targets) + " |",
             "| --- | --- | ---: | ---: | --- | " + " | ".join("---" for _ in targets) + " |"]
    for m in s["metrics"]:
        split = f"{m['split']}{' (LEAKY)' if m['leaky'] else ''}"
        cells = " | ".join(_fmt({**m.get(f"{t}_ccc", {}), "ratings": m.get("ratings")}) for t in targets)
        lines.append(f"| {m['corpus']} | {split} | {m['n']} | {m['speakers']} | "
                     f"{_fmt({**m.get('ccc', {}), 'ratings': m.get('ratings')})} | {cells} |")
    return lines


def render_model_card(run_dir: str | os.PathLike[str]) -> str:
    s = model_summary(run_dir)
    run = Path(run_dir)
    fam, prot = s["family"], s["protocol"]
    corpora = [d["corpus"] for d in s["training_data"]]
    dimensional = task_named(s["task"]).rated
    if dimensional:
        lo, hi = s["target_range"]
        outputs = f"- Outputs ({len(s['targets'])}): {', '.join(s['targets'])}, each on [{lo:g}, {hi:g}] (dimensional)"
    else:
        outputs = f"- Labels ({len(s['labels'])}): {', '.join(s['labels'])}"
    lines = ["---", "library_name: emoshift", "pipeline_tag: audio-classification",
             "tags: [speech-emotion-recognition, audio-classification, onnx]",
             f"datasets: [{', '.join(corpora)}]",
             "metrics: [ccc, pearson, mae]" if dimensional else "metrics: [uar, accuracy, macro_f1]", "---", "",
             f"# {run.name}: speech emotion recognition ({fam['model']})", "",
             "## Model details", "",
             f"- Architecture: {fam['architecture'] or fam['model']} (input: {fam['input_kind']})",
             outputs,
             f"- Input: 16 kHz mono audio; the model's window is {s['window_s']:g} s (longer audio is scored in windows)",
             "- Trained with emoshift (Lightning); weights in model.safetensors, ONNX graph in model.onnx when exported",
             "", "## Training data", "", "| corpus | train | val | test | speakers (train/val/test) |",
             "| --- | ---: | ---: | ---: | --- |"]
    for d in s["training_data"]:
        u, sp = d["utterances"], d["speakers"]
        lines.append(f"| {d['corpus']} | {u.get('train', 0)} | {u.get('val', 0)} | {u.get('test', 0)} | "
                     f"{sp.get('train', 0)}/{sp.get('val', 0)}/{sp.get('test', 0)} |")
    if prot.get("label_counts"):
        counts = ", ".join(f"{k} {v}" for k, v in sorted(prot["label_counts"].items()))
        lines += ["", f"Training utterances per label: {counts}."]
    lines += ["", "## Protocol", "", f"- Split: {prot['split']}", f"- Label policy: {prot['label_policy']}",
              f"- Epochs run: {prot['epochs_run']}"]
    if prot.get("distill_teacher"):
        lines.append(f"- Distilled from: {prot['distill_teacher']}")
    lines += ["", "## Results", "",
              "95% confidence intervals: percentile bootstrap over speakers. `test` = held-out speakers of a training "
              "corpus; `all` = every utterance of a corpus not trained on (cross-corpus).", "",
              *(_dimensional_results(s) if dimensional else _categorical_results(s))]
    lines += ["", "## Fairness", ""]
    if s["fairness"]:
        for f in s["fairness"]:
            lines += [f"- {f['corpus']}: " + " ".join(f["summary"])]
    else:
        lines.append("No fairness audit has been run (`emoshift audit RUN --corpus NAME=ROOT`).")
    acted = [c for c in corpora if c in ACTED]
    lines += ["", "## Intended use", "",
              "Research on speech emotion recognition and prototypes that show emotion estimates over time. Not for "
              "decisions about people (hiring, health, policing, credit): the labels are acted categories, not "
              "anyone's inner state.", "", "## Limitations", ""]
    if prot.get("speaker_norm"):
        lines.append("- Inputs are standardised per speaker: the results above normalised each test speaker with "
                     "that speaker's own recordings. A clip of an unknown speaker (predict, the service, the ONNX "
                     "graph) is standardised with the training speakers' statistics instead; expect lower scores.")
    if acted:
        lines.append(f"- Trained on acted speech ({', '.join(acted)}): actors reading fixed sentences in studio or "
                     "near-studio conditions; expect lower accuracy on spontaneous, conversational or noisy speech.")
    lines += ["- The cross-corpus rows above are the better guide to performance on new recordings than the "
              "in-corpus test rows.",
              f"- Training speakers: {prot['training_speakers']}; groups of speakers not represented may be served worse.",
              "", "## How to use", "", "With emoshift:", "", "```bash", f"emoshift predict {run.name} speech.wav",
              f"emoshift predict {run.name} long.wav --window 3 --hop 1 --format json   # emotion over time",
              f"emoshift export {run.name}          # writes {run.name}/model.onnx",
              f"emoshift serve {run.name}           # web page and API on http://127.0.0.1:8000", "```", "",
              "With onnxruntime alone (after `emoshift export`):", "", "```python",
              "import json, numpy as np, onnxruntime as ort, soundfile as sf, soxr",
              f"sess = ort.InferenceSession('{run.name}/model.onnx')",
              "labels = json.loads(sess.get_modelmeta().custom_metadata_map['labels'])",
              "wave, sr = sf.read('speech.wav', dtype='float32', always_2d=True)",
              "wave = soxr.resample(wave.mean(axis=1), sr, 16000).astype(np.float32)[None]  # (1, S)"]
    feed = "{'waveform': wave, 'mask': np.ones(wave.shape, np.int64)}" if fam["input_kind"] == "waveform" else "{'waveform': wave}"
    if dimensional:
        lines += [f"values = sess.run(None, {feed})[0][0]  # {', '.join(s['targets'])}",
                  f"print(dict(zip({s['targets']!r}, values.round(3))))", "```", ""]
    else:
        lines += [f"probs = sess.run(['probabilities'], {feed})[0][0]",
                  "print(labels[int(probs.argmax())], dict(zip(labels, probs.round(3))))", "```", ""]
    return "\n".join(lines)


def write_model_card(run_dir: str | os.PathLike[str]) -> Path:
    """Write (atomically) RUN/README.md; returns its path."""
    out = Path(run_dir) / README
    atomic_write_text(out, render_model_card(run_dir))
    return out
