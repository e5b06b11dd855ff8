"""The model card: ``RUN/README.md`` in the Hugging Face model-card layout, and the same facts as a dict
(``GET /v1/model``), read from model.json, splits/, metrics/, done.json and audit/ when present (no torch).

Sections: YAML front matter (library, tags, metrics), model details, training data with counts, protocol,
results with 95% confidence intervals per corpus, fairness summary, intended use, limitations, how to use it
(emoshift, and onnxruntime alone, scoring a file exactly as ``emoshift predict`` does).

A speaker cross-validation run (k-fold, leave-one-speaker-out, the corpus's own folds) is an ensemble of its fold
models: its training data lists what each member trained on, fold by fold. A fold run's card names it by its
place (``RUN/folds/0``). The card is written when a run finishes and again whenever ``evaluate`` or ``audit``
adds results (:func:`refresh_model_card`), so it never lags the run's metrics and audits.
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
from emoshift.data.texts import overlap_mark
from emoshift.evaluation.metrics import with_ci
from emoshift.evaluation.seeded import NOT_MEASURED, seed_text

README = "README.md"
ACTED = {"ravdess", "crema-d", "tess", "savee", "emodb"}  # corpora of actors reading fixed sentences


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


METHODS = {"kfold": "k-fold speaker cross-validation", "loso": "leave-one-speaker-out cross-validation",
           "corpus": "cross-validation over the corpus's own folds"}


def card_name(run: Path) -> str:
    """How the card and its commands name the run: a fold or seed run by its place in the pooled run
    (``RUN/folds/0``, ``RUN/seeds/1``, ``RUN/seeds/1/folds/0``)."""
    parts, at = [run.name], run
    while at.parent.name in ("folds", "seeds"):
        parts = [at.parent.parent.name, at.parent.name, *parts]
        at = at.parent.parent
    return "/".join(parts)


def _split_counts(rd: RunDir, corpus: str) -> tuple[dict[str, int], dict[str, int]]:
    rows = read_csv(rd.split(corpus)) if rd.split(corpus).is_file() else []
    utts = Counter(r["split"] for r in rows)
    speakers = {part: len({r["speaker"] for r in rows if r["split"] == part}) for part in utts}
    return dict(utts), speakers


def _members(rd: RunDir, info: ModelRecord) -> list[tuple[str, RunDir]]:
    from emoshift.models.ensemble import member_paths

    rels = info.members or []
    return [(rel, RunDir.of(p)) for rel, p in zip(rels, member_paths(rd.path, info), strict=True)]


def _training_data(rd: RunDir, info: ModelRecord) -> list[dict[str, Any]]:
    """Per training corpus: utterances and speakers per split part. An ensemble (fold models) has one row per
    corpus and member, with what that member trained, validated and was tested on (``member``: ``folds/<i>``)."""
    out = []
    members = _members(rd, info) if info.members else [("", rd)]
    for corpus in info.train_corpora:
        for rel, member in members:
            utts, speakers = _split_counts(member, corpus)
            out.append({"corpus": corpus, **({"member": rel} if rel else {}), "utterances": utts,
                        "speakers": speakers})
    return out


def _ensemble(rd: RunDir, info: ModelRecord) -> dict[str, Any] | None:
    """What a fold ensemble is: its members, how they were split, how they are combined, what was tested."""
    if not info.members:
        return None
    import yaml

    split = ((yaml.safe_load(rd.config.read_text(encoding="utf-8")) or {}).get("data") or {}).get("split") or {} \
        if rd.config.is_file() else {}
    method = str(split.get("method", ""))
    tested = {c: _split_counts(rd, c) for c in info.train_corpora}
    seeds = len(rd.seed_dirs())  # a repeated-training run: its members are every seed's models
    method_text = METHODS.get(method, method or "folds")
    if seeds:
        method_text = f"{seeds} training seeds" + (f" x {method_text}" if method in METHODS else "")
    return {
        "members": len(info.members), "method": method, "method_text": method_text, "seeds": seeds or 1,
        "combine": info.ensemble or info.task_kind.ensemble,
        "tested_out_of_fold": {c: {"utterances": u.get("test", 0), "speakers": sp.get("test", 0)}
                               for c, (u, sp) in tested.items()},
    }


def _protocol_text(info: ModelRecord, ens: dict[str, Any] | None) -> str:
    if info.leaky_split:
        return "LEAKY: some test speakers were seen in training"
    if ens is None:
        return "speaker-independent train/val/test per corpus (no test speaker seen in training)"
    if ens["seeds"] > 1:
        return (f"{ens['method_text']}: the whole run trained once per seed (seeds/<s>/), the scores the mean over "
                f"seeds of each seed's test scores; served: the {ens['combine']} of all {ens['members']} models "
                "(every seed's)")
    return (f"{ens['method_text']}, {ens['members']} folds: each fold model trained on its fold's train and val "
            "speakers and was tested on the held-out ones; the scores pool every fold's out-of-fold predictions "
            f"(each test utterance scored by the one model that never heard its speaker); served: the "
            f"{ens['combine']} of the {ens['members']} fold models")


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
            "text_overlap": m.get("text_overlap"),
            "seeds": seed_text(m),
            **{k: {"value": m.get(k), "ci95": ci.get(k), "speakers": m.get("speakers")}
               for k in ("uar", "accuracy", "macro_f1")},
            "agreement": m.get("agreement"),  # the raters' votes: evaluation.agreement
        })
    return out


def _dimensional_metrics(m: dict[str, Any], corpus: str) -> dict[str, Any]:
    """CCC (mean over targets) and each target's CCC, with their intervals (null below 5 speakers)."""
    per = m.get("per_target") or {}
    row: dict[str, Any] = {
        "corpus": m.get("corpus", corpus), "split": m.get("split"), "n": m.get("n"), "speakers": m.get("speakers"),
        "leaky": m.get("leaky"), "ci95_reason": m.get("ci95_reason"), "ratings": m.get("ratings", True),
        "text_overlap": m.get("text_overlap"),
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
    dimensional = info.task_kind.rated
    ens = _ensemble(rd, info)
    return {
        "task": info.task_kind.name,
        "labels": info.labels,
        **({"targets": info.targets, "target_range": info.target_range} if info.targets is not None else {}),
        "family": {"model": info.model, "input_kind": info.input_kind, "architecture": info.architecture},
        "training_data": _training_data(rd, info),
        "ensemble": ens,
        "protocol": {
            "split": _protocol_text(info, ens),
            "leaky": info.leaky_split,
            "label_policy": None if dimensional else info.label_policy,  # ratings: no label policy applies
            "training_speakers": len(info.training_speakers),  # train + val speakers (all members')
            "epochs_run": done.get("epochs_run"),
            "samples": done.get("samples"),
            "label_counts": done.get("label_counts"),
            "distill_teacher": info.distill_teacher,
            "targets": done.get("targets"),  # soft-label training: {"kind": "soft", "soft_mix": ...}
            "speaker_norm": bool(info.speaker_norm),
            "domain_norm": info.domain_norm or "none",
            "adapted": info.adapted,  # emoshift adapt: {"method", "corpus", "root", "clips", "from"}
            **({"dann": info.dann} if info.dann else {}),
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


def _overlap_lines(s: dict[str, Any]) -> list[str]:
    """The limitation a text overlap is: which scores tested sentences the model trained on (none: no line)."""
    overlap = [f"{m['corpus']} {m['text_overlap']:.0%}" for m in s["metrics"] if overlap_mark(m.get("text_overlap"))]
    if not overlap:
        return []
    return [f"- Text overlap (share of test utterances saying a text the model trained on): {', '.join(overlap)}. "
            "Those scores may partly measure recognising the sentences; `data.split.disjoint: [speaker, text]` "
            "trains and tests on disjoint texts."]


def _split_label(m: dict[str, Any]) -> str:
    """The split a score is on, marked as leaks are: "test (LEAKY)", "test (TEXT OVERLAP 50%)"."""
    marks = [x for x in ("LEAKY" if m.get("leaky") else "", overlap_mark(m.get("text_overlap"))) if x]
    return str(m["split"]) + "".join(f" ({x})" for x in marks)


def _categorical_results(s: dict[str, Any]) -> list[str]:
    lines = ["| corpus | split | n | speakers | UAR | accuracy | macro-F1 | seeds (UAR) |",
             "| --- | --- | ---: | ---: | --- | --- | --- | --- |"]
    for m in s["metrics"]:
        split = _split_label(m)
        lines.append(f"| {m['corpus']} | {split} | {m['n']} | {m['speakers']} | {_fmt(m['uar'])} | "
                     f"{_fmt(m['accuracy'])} | {_fmt(m['macro_f1'])} | {m.get('seeds') or NOT_MEASURED} |")
    return lines


def _agreement_results(s: dict[str, Any]) -> list[str]:
    """The corpora with raters' votes: the predicted distribution against the raters', UAR by agreement half
    (nothing when no corpus has votes)."""
    def num(v: float | None) -> str:
        return "–" if v is None else f"{v:.3f}"

    if not any(m.get("agreement") for m in s["metrics"]):
        return []
    lines = ["", "Agreement with the raters (corpora with raters' votes): cross-entropy (nats) and Jensen-Shannon "
             "distance (base 2) of the predicted distribution to the raters'; UAR on the clips above the median "
             "share of the majority vote (high agreement) and on the others (low).", "",
             "| corpus | n | cross-entropy | JS distance | median agreement | UAR high (n) | UAR low (n) |",
             "| --- | ---: | ---: | ---: | ---: | --- | --- |"]
    for m in s["metrics"]:
        if a := m.get("agreement"):
            lines.append(f"| {m['corpus']} | {a['n']} | {num(a['cross_entropy'])} | {num(a['js_distance'])} | "
                         f"{num(a['median_agreement'])} | {num(a['uar_high'])} ({a['n_high']}) | "
                         f"{num(a['uar_low'])} ({a['n_low']}) |")
    return lines


def _dimensional_results(s: dict[str, Any]) -> list[str]:
    """Concordance correlation (CCC) per target and its mean over targets."""
    targets = s["targets"]
    lines = ["CCC: Lin's concordance correlation coefficient (1 = predictions equal the ratings, 0 = no agreement).", "",
             "| corpus | split | n | speakers | CCC (mean) | " + " | ".join(f"{t} CCC" for t in targets) + " |",
             "| --- | --- | ---: | ---: | --- | " + " | ".join("---" for _ in targets) + " |"]
    for m in s["metrics"]:
        split = _split_label(m)
        cells = " | ".join(_fmt({**m.get(f"{t}_ccc", {}), "ratings": m.get("ratings")}) for t in targets)
        lines.append(f"| {m['corpus']} | {split} | {m['n']} | {m['speakers']} | "
                     f"{_fmt({**m.get('ccc', {}), 'ratings': m.get('ratings')})} | {cells} |")
    return lines


def _results_intro(ens: dict[str, Any] | None) -> str:
    """What the card's scores are and what their intervals cover (speakers, and seeds when there are several)."""
    what = (
        "Scores: the mean over the training seeds; 95% confidence intervals cover speaker sampling and training "
        "randomness (seeds), `seeds (UAR)` gives the seeds' mean and sd. "
        if ens and ens["seeds"] > 1
        else "95% confidence intervals over speakers (a delete-one-speaker jackknife with t quantiles); one training "
        "seed, so training variance was not measured. "
    )
    return what + (
        "`test` = held-out speakers of a training corpus; `all` = every utterance of a corpus not trained on "
        "(cross-corpus)."
    )


def render_model_card(run_dir: str | os.PathLike[str]) -> str:
    s = model_summary(run_dir)
    run = Path(run_dir)
    name = card_name(run)
    fam, prot, ens = s["family"], s["protocol"], s["ensemble"]
    corpora = list(dict.fromkeys(d["corpus"] for d in s["training_data"]))
    dimensional = task_named(s["task"]).rated
    if dimensional:
        lo, hi = s["target_range"]
        outputs = f"- Outputs ({len(s['targets'])}): {', '.join(s['targets'])}, each on [{lo:g}, {hi:g}] (dimensional)"
        front = ["tags: [speech-emotion-recognition, dimensional-emotion, onnx]"]  # regression: no classification tag
    else:
        outputs = f"- Labels ({len(s['labels'])}): {', '.join(s['labels'])}"
        front = ["pipeline_tag: audio-classification", "tags: [speech-emotion-recognition, audio-classification, onnx]"]
    lines = ["---", "library_name: emoshift", *front,
             f"datasets: [{', '.join(corpora)}]",
             "metrics: [ccc, pearson, mae]" if dimensional else "metrics: [uar, accuracy, macro_f1]", "---", "",
             f"# {name}: speech emotion recognition ({fam['model']})", "",
             "## Model details", "",
             f"- Architecture: {fam['architecture'] or fam['model']} (input: {fam['input_kind']})",
             outputs,
             f"- Input: 16 kHz mono audio; the model's window is {s['window_s']:g} s (longer audio is scored in windows)"]
    if ens and ens["seeds"] > 1:
        lines.append(f"- An ensemble of {ens['members']} models ({ens['method_text']}; {ens['combine']}), each seed "
                     "in seeds/<s>/ with its own card")
    elif ens:
        lines.append(f"- An ensemble of {ens['members']} fold models ({ens['method_text']}; {ens['combine']}), "
                     "each in folds/<i>/ with its own card")
    else:
        lines.append("- Trained with emoshift (Lightning); weights in model.safetensors, ONNX graph in model.onnx when "
                     "exported")
    if (adapted := prot.get("adapted")) is not None:
        lines.append(_adapted_line(adapted))
    lines += ["", "## Training data", "", *_training_lines(s)]
    if prot.get("label_counts"):
        counts = ", ".join(f"{k} {v}" for k, v in sorted(prot["label_counts"].items()))
        lines += ["", f"Training utterances per label: {counts}."]
    lines += ["", "## Protocol", "", f"- Split: {prot['split']}"]
    if dimensional:
        lines.append(f"- Targets: {', '.join(s['targets'])}, each corpus's ratings rescaled to [{lo:g}, {hi:g}]; the "
                     "outputs are not clipped, so a value may fall slightly outside that range")
    else:
        lines.append(f"- Label policy: {prot['label_policy']}")
    if prot["epochs_run"] is not None:
        lines.append(f"- Epochs run: {prot['epochs_run']}")
    if prot.get("distill_teacher"):
        lines.append(f"- Distilled from: {prot['distill_teacher']}")
    if prot.get("dann"):
        lines.append(f"- {_dann_line(prot['dann'])}")
    lines += ["", "## Results", "", _results_intro(ens), "",
              *(_dimensional_results(s) if dimensional else _categorical_results(s))]
    lines += _agreement_results(s)
    lines += ["", "## Fairness", ""]
    if s["fairness"]:
        for f in s["fairness"]:
            lines += [f"- {f['corpus']}: " + " ".join(f["summary"])]
    else:
        lines.append(f"No fairness audit has been run (`emoshift audit {name} --on NAME=ROOT`).")
    acted = [c for c in corpora if c in ACTED]
    lines += ["", "## Intended use", "",
              "Research on speech emotion recognition and prototypes that show emotion estimates over time. Not for "
              "decisions about people (hiring, health, policing, credit): the labels are acted categories, not "
              "anyone's inner state.", "", "## Limitations", ""]
    lines += _normalisation_lines(prot)
    if acted:
        lines.append(f"- Trained on acted speech ({', '.join(acted)}): actors reading fixed sentences in studio or "
                     "near-studio conditions; expect lower accuracy on spontaneous, conversational or noisy speech.")
    lines += _overlap_lines(s)
    lines += ["- The cross-corpus rows above are the better guide to performance on new recordings than the "
              "in-corpus test rows.", f"- {_speakers_sentence(s)}"]
    lines += ["", "## How to use", "", "With emoshift:", "", "```bash", f"emoshift predict {name} speech.wav",
              f"emoshift predict {name} long.wav --window 3 --hop 1 --format json   # emotion over time",
              f"emoshift export {name}          # writes {name}/model.onnx",
              f"emoshift serve {name}           # web page and API on http://127.0.0.1:8000", "```", "",
              *onnx_snippet(name, s)]
    return "\n".join(lines)


def _normalisation_lines(prot: dict[str, Any]) -> list[str]:
    """The limitations of per-speaker and per-corpus input standardisation."""
    lines = []
    if prot.get("speaker_norm"):
        lines.append("- Inputs are standardised per speaker: the results above normalised each test speaker with "
                     "that speaker's own recordings. A clip of an unknown speaker (predict, the service, the ONNX "
                     "graph) is standardised with the training speakers' statistics instead; expect lower scores.")
    if prot.get("domain_norm") == "corpus":
        held = (f"{prot['adapted']['corpus']}'s" if (prot.get("adapted") or {}).get("method") == "corpus-norm"
                else "the training corpora's pooled")
        lines.append("- Inputs are standardised per corpus: the results above standardised each corpus with the "
                     "statistics of its own evaluated audio. A clip of unknown origin (predict, the service, the ONNX "
                     f"graph) is standardised with {held} statistics instead.")
    return lines


def _adapted_line(adapted: dict[str, Any]) -> str:
    """The model-details line of a run written by ``emoshift adapt``: what it was adapted on, and how."""
    if adapted.get("method") == "few-shot":
        return _few_shot_line(adapted)
    how = {"corpus-norm": "its input standardisation set to that audio's statistics",
           "adabn": "its batch-norm statistics re-estimated on that audio (AdaBN), weights unchanged"}
    return (f"- Adapted to {adapted.get('corpus')} ({adapted.get('clips')} unlabelled clips from "
            f"{adapted.get('root')}; no label read) by {adapted.get('method')}: "
            f"{how.get(str(adapted.get('method')), 'see model.json')}; adapted from the run {adapted.get('from')}. "
            "Results below are of this adapted model (`emoshift evaluate`).")


def _dann_line(dann: dict[str, Any]) -> str:
    """The model card's line on domain-adversarial training (model.json ``dann``)."""
    unl = dann.get("unlabelled") or {}
    target = (" and the unlabelled audio of " + ", ".join(f"{n} ({k} utterances)" for n, k in unl.items())) if unl else ""
    return (f"Domain-adversarial training (DANN): a corpus classifier over {', '.join(dann.get('domains', []))} behind "
            f"a gradient-reversal layer (weight {dann.get('weight')}, {dann.get('schedule')} schedule), trained on the "
            f"training corpora{target} (no label of theirs read); it is not part of this model")


def _few_shot_line(a: dict[str, Any]) -> str:
    """The model-details line of a few-shot adapted run (``emoshift adapt --labelled-speakers K``)."""
    how = str(a.get("fit", "adapted"))
    if a.get("epochs") is not None:
        how += f", {a['epochs']} epochs at lr {a.get('lr'):g}"
    return (f"- Adapted (few-shot) to {a.get('corpus')}: {how}, on the labelled audio of K={a.get('k')} of its "
            f"speakers ({', '.join(a.get('speakers') or []) or 'none'}; chosen by seed {a.get('seed')}, "
            f"gender-balanced); adapted from the run {a.get('from')}. Its {a.get('corpus')} scores are on the "
            f"{a.get('held_back')} other speakers only (never one it adapted on).")


def _training_lines(s: dict[str, Any]) -> list[str]:
    """The training-data table: one row per corpus, or per corpus and fold model of an ensemble."""
    ens = s["ensemble"]
    if ens:
        tested = "; ".join(f"{c}: {t['utterances']} utterances of {t['speakers']} speakers"
                           for c, t in ens["tested_out_of_fold"].items())
        together = "each seed's folds" if ens["seeds"] > 1 else "the folds"
        lines = [f"Each fold model trained on its own speakers (rows below); together {together} tested every "
                 f"utterance once, out of fold ({tested}).", "",
                 "| corpus | fold model | train | val | test | speakers (train/val/test) |",
                 "| --- | --- | ---: | ---: | ---: | --- |"]
    else:
        lines = ["| corpus | train | val | test | speakers (train/val/test) |", "| --- | ---: | ---: | ---: | --- |"]
    for d in s["training_data"]:
        u, sp = d["utterances"], d["speakers"]
        member = f" {d['member']} |" if "member" in d else ""
        lines.append(f"| {d['corpus']} |{member} {u.get('train', 0)} | {u.get('val', 0)} | {u.get('test', 0)} | "
                     f"{sp.get('train', 0)}/{sp.get('val', 0)}/{sp.get('test', 0)} |")
    if (targets := s["protocol"].get("targets")) and targets.get("kind") == "soft":
        lines += ["", f"Targets: soft, the raters' vote distribution (hard-label weight {targets['soft_mix']:g})."]
    return lines


def _speakers_sentence(s: dict[str, Any]) -> str:
    """How many speakers the model learned from, counted as the table counts them (train and val)."""
    n = s["protocol"]["training_speakers"]
    if s["ensemble"]:
        return (f"Speakers heard in training: {n} across the {s['ensemble']['members']} fold models (each fold model: "
                "its train and val speakers above); groups of speakers not represented may be served worse.")
    train = sum(d["speakers"].get("train", 0) for d in s["training_data"])
    val = sum(d["speakers"].get("val", 0) for d in s["training_data"])
    return (f"Training speakers: {n} ({train} trained on, {val} used for validation); groups of speakers not "
            "represented may be served worse.")


def onnx_snippet(name: str, s: dict[str, Any]) -> list[str]:
    """The card's onnxruntime-only example: it scores a file as ``emoshift predict`` does (windows of the model's
    length every third of it, the last ending at the file's end, averaged by duration; a file no longer than one
    window scored whole with its leading and trailing silence trimmed), so both give the same numbers."""
    dimensional = task_named(s["task"]).rated
    x = "wave[None, a:b]"
    feed = (f"{{'waveform': {x}, 'mask': np.ones((1, b - a), np.int64)}}" if s["family"]["input_kind"] == "waveform"
            else f"{{'waveform': {x}}}")
    out = "values" if dimensional else "probabilities"
    lines = ["With onnxruntime alone (after `emoshift export`), scoring a file as `emoshift predict` does:", "",
             "```python",
             "import json, numpy as np, onnxruntime as ort, soundfile as sf, soxr",
             f"sess = ort.InferenceSession('{name}/model.onnx')",
             "meta = json.loads(sess.get_modelmeta().custom_metadata_map['emoshift'])",
             "wave, sr = sf.read('speech.wav', dtype='float32', always_2d=True)",
             "wave = soxr.resample(wave.mean(axis=1), sr, 16000, quality='HQ').astype(np.float32)  # (S,) 16 kHz mono",
             "w = round(meta['window_s'] * 16000); h = max(1, round(meta['window_s'] / 3 * 16000))",
             "if len(wave) <= w:  # one window: trim leading/trailing silence as training did (25 ms frames)",
             "    if meta['trim_silence'] and len(wave) > 400:",
             "        e = np.convolve(wave.astype(np.float64) ** 2, np.ones(400), 'valid')[::100] / 400",
             "        db = 10 * np.log10(np.maximum(e, 1e-20)); keep = np.nonzero(db > db.max() - meta['trim_top_db'])[0]",
             "        wave = wave[keep[0] * 100 : keep[-1] * 100 + 400]",
             "    spans = [(0, len(wave))]",
             "else:  # windows every third of one, the last ending at the file's end",
             "    spans = [(a, a + w) for a in range(0, len(wave) - w + 1, h)]",
             "    spans += [(len(wave) - w, len(wave))] if spans[-1][1] < len(wave) else []",
             f"rows = np.concatenate([sess.run(['{out}'], {feed})[0] for a, b in spans])",
             "weights = np.array([b - a for a, b in spans], np.float64)",
             "mean = (weights[:, None] * rows).sum(axis=0) / weights.sum()"]
    if dimensional:
        lines += [f"print(dict(zip(meta['targets'], mean.round(3))))  # not clipped to {s['target_range']}", "```", ""]
    else:
        lines += ["print(meta['labels'][int(mean.argmax())], dict(zip(meta['labels'], mean.round(3))))", "```", ""]
    return lines


def refresh_model_card(run_dir: str | os.PathLike[str]) -> Path | None:
    """Rewrite RUN/README.md of a finished run (evaluate and audit call this after adding results); None while
    the run is unfinished (training writes the card when it completes)."""
    if not RunDir.of(run_dir).done.is_file():
        return None
    return write_model_card(run_dir)


def write_model_card(run_dir: str | os.PathLike[str]) -> Path:
    """Write (atomically) RUN/README.md; returns its path."""
    out = Path(run_dir) / README
    atomic_write_text(out, render_model_card(run_dir))
    return out
