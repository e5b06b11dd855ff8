"""The leave-one-corpus-out benchmark of the levers (configs/domain_shift.yaml): experiments, claims and plan
generated from the corpus list (fast), then the whole study on three tiny synthetic corpora (RAVDESS, CREMA-D,
IEMOCAP) with its "What closes the gap" section, domain_shift.csv and heatmap checked against the runs' metrics."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from emoshift.cli import app
from emoshift.study import StudyError, load_study
from emoshift.study.cross_corpus import CrossCorpusError
from emoshift.study.domain_shift import ShiftPlan, expand
from emoshift.study.gap import GAP_COLUMNS, share_closed

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "domain_shift.yaml"


@pytest.fixture(scope="module")
def roots(synth_tiny: Path, synth_more: Path) -> dict[str, str]:
    return {
        "ravdess": str(synth_tiny / "ravdess"),
        "crema-d": str(synth_tiny / "crema-d"),
        "iemocap": str(synth_more / "iemocap"),
    }


def _raw() -> dict[str, Any]:
    data = yaml.safe_load(CONFIG.read_text())
    assert isinstance(data, dict)
    return data


def test_experiments_claims_and_plan_are_generated(roots: dict[str, str]) -> None:
    study = load_study(CONFIG, roots=roots, profile="demo")
    plan = study.matrix
    assert isinstance(plan, ShiftPlan) and plan.corpora == tuple(roots) and plan.policy == "four"
    assert plan.methods[0] == plan.reference == "pooled"
    for cell in plan.cells:  # trained on every corpus but the held-out one, which is only scored
        cfg = study.experiment(cell.id).config
        assert cfg is not None and cell.held_out not in cfg.data.corpora and cell.held_out not in cfg.data.roots
        assert sorted(cfg.data.corpora) == sorted(c for c in roots if c != cell.held_out)
        assert cfg.model.name == {"acoustic": "egemaps", "cnn": "resnet18"}[cell.family]
        assert cfg.data.split.method == "speaker" and cfg.training.seeds == [0, 1, 2]
        ceiling = study.experiment(cell.in_domain_id).config
        assert ceiling is not None and ceiling.data.corpora == [cell.held_out]
        assert (ceiling.data.split.method, ceiling.data.split.k) == ("kfold", 3)  # the demo profile's k
        assert (cfg.training.augment.codec_p > 0) == (cell.method == "channel-aug")
        # DANN reads the held-out corpus's audio (never its labels): filled in per experiment
        assert cfg.data.unlabelled == ({cell.held_out: roots[cell.held_out]} if cell.method == "dann" else {})
        assert (cfg.training.dann is not None) == (cell.method == "dann")
        # AdaBN and few-shot adapt the pooled run to the held-out corpus (its config), after it, training nothing
        exp = study.experiment(cell.id)
        adapts = {"adabn": ("adabn", None), "few-shot": ("few-shot", 2)}.get(cell.method)
        assert (None if exp.adapt is None else (exp.adapt.method, exp.adapt.labelled_speakers)) == adapts
        if adapts is not None:
            assert exp.depends == (cell.reference_id,) and exp.adapt is not None and exp.adapt.corpus == cell.held_out
            assert cfg == study.experiment(cell.reference_id).config
    # a lever names the families it applies to: channel augmentation and DANN are the CNN's only
    assert {(c.family, c.method) for c in plan.cells} >= {
        ("acoustic", "pooled"), ("acoustic", "speaker-norm"), ("cnn", "pooled"), ("cnn", "channel-aug"), ("cnn", "dann")
    }
    assert not any(c.family == "acoustic" and c.method in ("channel-aug", "dann") for c in plan.cells)
    assert len(plan.cells) == len({(c.family, c.method) for c in plan.cells}) * len(roots)  # every corpus held out
    # one 'better' claim per lever, family and held-out corpus, against pooled training on that corpus only
    levers = [c for c in plan.cells if c.method != plan.reference]
    claims = {(c.a, c.b, tuple(c.corpora)) for c in study.findings.claims if c.kind == "better"}
    assert claims == {(c.id, c.reference_id, (c.held_out,)) for c in levers}
    # the matrix section shows the first family's in-domain and pooled runs
    assert [r.id for r in plan.rows] == [f"acoustic.{m}.{c}" for m in ("in-domain", "pooled") for c in roots]


def test_a_lever_is_one_entry_and_reads_the_held_out_audio_when_asked(roots: dict[str, str]) -> None:
    raw = _raw()
    raw["domain_shift"]["methods"]["target-audio"] = {
        "config": {"training": {"dann": {"weight": 1.0}}}, "families": ["cnn"], "unlabelled": "held_out"
    }
    study, plan = expand(raw, roots)
    by_id = {e["id"]: e["config"] for e in study["experiments"] if "config" in e}  # adaptations train nothing
    for c, root in roots.items():
        cfg = by_id[f"cnn.target-audio.{c}"]
        assert cfg["data"]["unlabelled"] == {c: root} and c not in cfg["data"]["corpora"]
        assert cfg["training"]["dann"] == {"weight": 1.0} and "unlabelled" not in by_id[f"cnn.pooled.{c}"]["data"]
        assert f"acoustic.target-audio.{c}" not in by_id
    assert isinstance(plan, ShiftPlan) and plan.methods[-1] == "target-audio"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda raw: raw["domain_shift"].update(reference="none"), "reference 'none' is not one of the methods"),
        (lambda raw: raw["domain_shift"]["methods"]["pooled"].update(families=["ssl"]), "unknown family 'ssl'"),
        (lambda raw: raw["domain_shift"]["methods"].update({"in-domain": {}}), "not a usable name"),
        (lambda raw: raw["domain_shift"].update(shuffle=True), "domain_shift"),
        (lambda raw: raw.update(cross_corpus={}), "not both"),
        (lambda raw: raw.update(experiments=[{"id": "x"}]), "generates its experiments"),
        (lambda raw: raw["domain_shift"].update(held_out=["msp-podcast"]), "'msp-podcast' is not one of the --corpus"),
    ],
)
def test_bad_benchmark_files_are_one_line(roots: dict[str, str], change: Any, message: str) -> None:
    raw = _raw()
    change(raw)
    with pytest.raises(CrossCorpusError, match=message):
        expand(raw, roots)


def test_three_corpora_at_least(roots: dict[str, str]) -> None:
    with pytest.raises(StudyError, match="3 to 10 corpora"):
        load_study(CONFIG, roots={k: roots[k] for k in ("ravdess", "crema-d")})


def _read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _uar(out: Path, eid: str, corpus: str) -> float:
    return float(json.loads((out / "runs" / eid / "metrics" / f"{corpus}.json").read_text())["uar"])


# One corpus held out (the others are pooled): the in-domain ceiling, pooled training and a lever
LEVER = {"acoustic": "speaker-norm", "cnn": "dann"}


def test_the_benchmark_runs_end_to_end_and_the_table_matches_the_runs(roots: dict[str, str], tmp_path: Path) -> None:
    """The CNN with DANN (the lever that reads the held-out corpus's audio), AdaBN and few-shot (the pooled run
    adapted, not retrained); the section and table do not depend on the family (the acoustic family's runs are the
    same study code, and take longer on 2 cores: openSMILE)."""
    family = "cnn"
    raw = _raw()
    spec = raw["domain_shift"]
    spec["families"] = {family: spec["families"][family]}
    spec["methods"] = {m: spec["methods"][m] for m in ("pooled", LEVER[family], "adabn", "few-shot")}
    spec["held_out"] = ["CREMA-D"]  # a registered corpus by any of its names
    config = tmp_path / "domain_shift.yaml"
    config.write_text(yaml.safe_dump(raw))
    out = tmp_path / "out"
    sets = [
        f"data.cache_dir={tmp_path / 'cache'}", "data.split.k=2", "features.n_mels=32", "features.crop_s=0.5",
        "model.width_mult=0.125", "training.batch_size=32", "training.epochs=1", "training.seeds=[0]",
        "training.early_stopping_patience=null", "evaluation.n_bootstrap=20", "evaluation.figures=false", "trainer.progress=false",
    ]
    args = ["study", str(config), "-o", str(out), "-q"]
    args += [a for name, root in roots.items() for a in ("--corpus", f"{name}={root}")]
    args += [a for s in sets for a in ("--set", s)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "what closes the gap:" in result.output

    rows = _read(out / "domain_shift.csv")
    assert rows and list(rows[0]) == list(GAP_COLUMNS)
    assert rows[0]["method"] == "pooled"  # the reference first, then the levers in the file's order
    assert sorted((r["family"], r["method"], r["held_out"]) for r in rows[1:]) == [
        (family, m, "crema-d") for m in sorted(("adabn", LEVER[family], "few-shot"))
    ]
    findings = {(f["a"], f["b"], f["corpus"]): f for f in _read(out / "findings.csv")}
    ceiling_preds = _read(out / "runs" / f"{family}.in-domain.crema-d" / "predictions" / "crema-d.csv")
    for r in rows:
        held = r["held_out"]
        run = out / "runs" / r["experiment"]
        trained = yaml.safe_load((run / "config.yaml").read_text())["data"]["corpora"]
        preds = _read(run / "predictions" / f"{held}.csv")
        adapted = json.loads((run / "model.json").read_text()).get("adapted") or {}
        assert adapted.get("method") == {"adabn": "adabn", "few-shot": "few-shot"}.get(r["method"])
        if r["method"] == "few-shot":  # adapted on K speakers of the held-out corpus; only the others scored
            split = _read(run / "splits" / f"{held}.csv")
            k = {s["speaker"] for s in split if s["split"] == "train"}
            assert len(k) == 2 and sorted(k) == adapted["speakers"]
            assert {p["speaker"] for p in preds}.isdisjoint(k) and preds
        else:  # only ever scored, every utterance
            assert held not in trained and not (run / "splits" / f"{held}.csv").exists()
            assert {p["id"] for p in preds} == {p["id"] for p in ceiling_preds}
        pooled, ceiling = f"{family}.pooled.{held}", f"{family}.in-domain.{held}"
        assert float(r["uar"]) == pytest.approx(_uar(out, r["experiment"], held), abs=1e-6)
        assert float(r["pooled_uar"]) == pytest.approx(_uar(out, pooled, held), abs=1e-6)
        assert float(r["in_domain_uar"]) == pytest.approx(_uar(out, ceiling, held), abs=1e-6)
        gap = float(r["in_domain_uar"]) - float(r["pooled_uar"])
        assert float(r["gap"]) == pytest.approx(gap, abs=2e-6)
        share = share_closed(float(r["uar"]), float(r["pooled_uar"]), float(r["in_domain_uar"]))
        if r["method"] == "pooled":
            assert r["verdict"] == "reference" and r["diff"] == "" and (share is None or share == 0.0)
            continue
        f = findings[(r["experiment"], pooled, held)]  # the study's finding: same numbers, same verdict
        assert (r["verdict"], r["diff"], r["diff_ci95_low"]) == (f["verdict"], f["diff"], f["ci95_low"])
        if r["method"] != "few-shot":  # the same utterances: the difference of the two UARs
            assert float(r["diff"]) == pytest.approx(float(r["uar"]) - float(r["pooled_uar"]), abs=1e-6)
        if share is None:
            assert r["gap_closed"] == "" and gap <= 1e-6
        else:  # the paired difference (few-shot: on the speakers it did not adapt on) over the gap
            assert float(r["gap_closed"]) == pytest.approx(float(r["diff"]) / gap, abs=1e-4)
        assert r["verdict"] == "inconclusive" and "1 seed" in f["reason"]  # one seed decides nothing

    report = (out / "report.md").read_text()
    assert "## What closes the gap" in report and "| in-domain (the ceiling) |" in report
    lever = next(r for r in rows if r["method"] == LEVER[family])
    assert f"{100 * float(lever['uar']):.1f}" in report and f"{float(lever['diff']) * 100:+.1f}" in report
    assert (out / "plots" / "gap_closed.png").is_file() and "What closes the gap" in (out / "report.html").read_text()

    # run again: a finished adaptation is kept (same source run, same step); an interrupted one made from another
    # config of its source is moved aside and done again
    few_shot, adabn = (out / "runs" / f"{family}.{m}.crema-d" for m in ("few-shot", "adabn"))
    before = (few_shot / "done.json").stat().st_mtime_ns
    (adabn / "done.json").unlink()
    cfg = yaml.safe_load((adabn / "config.yaml").read_text())
    cfg["training"]["epochs"] = 7
    (adabn / "config.yaml").write_text(yaml.safe_dump(cfg))
    again = CliRunner().invoke(app, [*args, "--only", f"{family}.few-shot.crema-d,{family}.adabn.crema-d"])
    assert again.exit_code == 0, again.output
    assert (few_shot / "done.json").stat().st_mtime_ns == before
    assert (adabn / "done.json").is_file() and len(list((out / "stale").glob(f"{family}.adabn.crema-d-*"))) == 1


def _fake_run(out: Path, eid: str, corpus: str, uar: float | None) -> None:
    run = out / "runs" / eid
    (run / "metrics").mkdir(parents=True)
    if uar is not None:
        (run / "metrics" / f"{corpus}.json").write_text(json.dumps({"uar": uar, "ci95": {"uar": [uar - 0.1, uar + 0.1]},
                                                                      "n_seeds": 3}))
        (run / "done.json").write_text("{}")


@pytest.mark.parametrize(
    ("pooled", "lever", "ceiling", "closed"),
    [
        (0.40, 0.50, 0.80, 0.25),  # a quarter of a 40-point gap
        (0.40, 0.30, 0.60, -0.5),  # worse than pooling: a negative share
        (0.60, 0.70, 0.55, None),  # the ceiling below pooled training: no gap to close
        (0.40, None, 0.80, None),  # the lever has not run: no row
    ],
)
def test_gap_rows_share_and_verdict(
    tmp_path: Path, pooled: float, lever: float | None, ceiling: float, closed: float | None
) -> None:
    """The share of the gap closed from the runs' metrics, the difference and verdict from the study's finding,
    on fabricated runs (a supported verdict needs 3 seeds, which the end-to-end test does not train)."""
    from emoshift.study.claims import Finding
    from emoshift.study.domain_shift import ShiftCell
    from emoshift.study.findings import ClaimSpec, Evidence, Judgement
    from emoshift.study.gap import gap_rows

    for eid, uar in (("cnn.pooled.b", pooled), ("cnn.dann.b", lever), ("cnn.in-domain.b", ceiling)):
        _fake_run(tmp_path, eid, "b", uar)
    cells = tuple(ShiftCell(family="cnn", method=m, held_out="b", id=f"cnn.{m}.b", reference_id="cnn.pooled.b",
                            in_domain_id="cnn.in-domain.b") for m in ("pooled", "dann"))  # fmt: skip
    plan = ShiftPlan(corpora=("a", "b", "c"), rows=(), policy="four", classes=(), chosen="", families=("cnn",),
                     methods=("pooled", "dann"), reference="pooled", cells=cells)  # fmt: skip
    claim = ClaimSpec(claim="dann beats pooled", kind="better", a="cnn.dann.b", b="cnn.pooled.b", corpora=[])
    evidence = Evidence(uar_a=lever, uar_b=pooled, ci=(0.02, 0.18), seeds=3)
    finding = Finding(claim, "b", evidence, Judgement("supported", "CI above 0", p=0.01, p_adjusted=0.02), 0.02)
    rows = gap_rows(tmp_path, plan, [finding])
    assert [r.method for r in rows] == (["pooled", "dann"] if lever is not None else ["pooled"])
    ref = rows[0]
    assert (ref.verdict, ref.diff, ref.pooled_uar, ref.in_domain_uar) == ("reference", None, pooled, ceiling)
    assert ref.gap == pytest.approx(ceiling - pooled) and ref.gap_closed == (0.0 if ceiling > pooled else None)
    if lever is None:
        return
    r = rows[1]
    assert (r.uar, r.verdict, r.p_adjusted, r.seeds) == (lever, "supported", 0.02, 3)
    assert r.diff == pytest.approx(lever - pooled) and (r.diff_ci95_low, r.diff_ci95_high) == (0.02, 0.18)
    assert (r.gap_closed is None) == (closed is None)
    if closed is not None:
        assert r.gap_closed == pytest.approx(closed)
