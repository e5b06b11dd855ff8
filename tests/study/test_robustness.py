"""The study's ``robustness:`` suite: the study file's perturbations (checked on load), each trained run scored
through the missing ones, and the report's "Robustness to channels" table read back from the runs."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from emoshift.core.io import atomic_write_json
from emoshift.core.rundir import RunDir
from emoshift.study import load_study, write_report
from emoshift.study.spec import StudyError
from tests.study.test_report import STUDY, _fake_run, _metrics


def _roots(tmp_path: Path) -> dict[str, str]:
    roots = {}
    for corpus in ("ravdess", "crema-d"):
        (tmp_path / "data" / corpus).mkdir(parents=True)
        roots[corpus] = str(tmp_path / "data" / corpus)
    return roots


def _study(tmp_path: Path, robustness: str) -> object:
    path = tmp_path / "study.yaml"
    path.write_text(STUDY + f"robustness: {robustness}\n")
    return load_study(path, roots=_roots(tmp_path))


def test_the_study_file_lists_perturbations_by_their_canonical_spec(tmp_path: Path) -> None:
    study = _study(tmp_path, "[telephone, MP3:16kbps, 'noise:snr=10db']")
    assert study.robustness == ("telephone", "mp3:16k", "noise:snr=10")


@pytest.mark.parametrize(("value", "says"), [("[mp3:9999k]", "outside 8..320"), ("[radio]", "unknown perturbation"),
                                             ("[telephone, telephone]", "twice")])
def test_a_bad_perturbation_in_the_study_file_is_one_line(tmp_path: Path, value: str, says: str) -> None:
    with pytest.raises(StudyError) as e:
        _study(tmp_path, value)
    assert says in str(e.value) and "\n" not in str(e.value).strip()


def test_a_profile_replaces_the_study_files_perturbations(tmp_path: Path) -> None:
    """The demo profile scores one channel where the paper profile scores the file's four; [] is none."""
    config = Path(__file__).parents[2] / "configs" / "study.yaml"
    roots = _roots(tmp_path)
    assert load_study(config, profile="demo", roots=roots).robustness == ("telephone",)
    assert load_study(config, profile="paper", roots=roots).robustness == (
        "telephone", "mp3:16k", "noise:snr=10", "reverb:rt60=0.6")
    for value, expect in (("[]", ()), ("[radio]", "unknown perturbation")):
        (tmp_path / "study.yaml").write_text(STUDY + f"robustness: [telephone]\nprofiles:\n  p: {{robustness: {value}}}\n")
        if isinstance(expect, str):
            with pytest.raises(StudyError, match=expect):
                load_study(tmp_path / "study.yaml", profile="p", roots=roots)
        else:
            assert load_study(tmp_path / "study.yaml", profile="p", roots=roots).robustness == expect


def test_the_study_scores_each_run_through_the_perturbations_it_lacks(tmp_path: Path, monkeypatch) -> None:
    from emoshift.study.plan import _evaluate_and_audit

    study = _study(tmp_path, "[telephone, gain:-20db]")
    run = RunDir.of(tmp_path / "out" / "runs" / "A")
    _fake_run(run.path, {"ravdess": _metrics(0.6, 0.58, 96), "crema-d": _metrics(0.3, 0.25, 480, split="all")})
    atomic_write_json(run.perturbed_metrics("crema-d", "telephone"), {"perturbation": "telephone"})  # done already
    calls = []
    fake = types.ModuleType("emoshift.evaluation.robustness")
    fake.evaluate_perturbations = lambda run_dir, corpora, perts, progress: calls.append(  # type: ignore[attr-defined]
        (dict(corpora), [p.spec for p in perts]))
    monkeypatch.setitem(sys.modules, "emoshift.evaluation.robustness", fake)
    did = _evaluate_and_audit(study, study.experiment("A"), run, False)
    assert calls == [({"ravdess": study.roots["ravdess"]}, ["telephone", "gain:-20db"]),
                     ({"crema-d": study.roots["crema-d"]}, ["gain:-20db"])]
    assert did == ["scored on ravdess through telephone, gain:-20db", "scored on crema-d through gain:-20db"]


def _perturbed(uar_clean: float, uar: float, ci: list[float] | None, spec: str) -> dict:
    return {"perturbation": spec, "n": 480, "speakers": 12, "uar_clean": uar_clean, "uar_clean_ci95": None,
            "uar": uar, "ci95": {"uar": [uar - 0.05, uar + 0.05]}, "uar_drop": uar_clean - uar,
            "uar_drop_ci95": ci, "accuracy": uar}


def test_the_report_tables_uar_and_the_paired_change_per_perturbation(tmp_path: Path) -> None:
    study = _study(tmp_path, "[telephone, mp3:16k]")
    out = tmp_path / "out"
    run = RunDir.of(out / "runs" / "A")
    _fake_run(run.path, {"ravdess": _metrics(0.6, 0.58, 96), "crema-d": _metrics(0.3, 0.25, 480, split="all")})
    atomic_write_json(run.perturbed_metrics("crema-d", "telephone"), _perturbed(0.25, 0.18, [0.03, 0.11], "telephone"))
    atomic_write_json(run.perturbed_metrics("crema-d", "mp3_16k"), _perturbed(0.25, 0.24, [-0.02, 0.04], "mp3:16k"))
    paths = write_report(out, study)
    md = paths["markdown"].read_text()
    section = md.split("## Robustness to channels", 1)[1].split("\n## ", 1)[0]
    assert "| ID | test corpus | clean UAR | telephone | mp3:16k |" in section
    assert "| A | CREMA-D | 25.0 | 18.0 (-7.0 [-11.0, -3.0]) | 24.0 (-1.0 [-4.0, +2.0]) |" in section
    with open(paths["results"]) as f:  # the perturbed files are not test corpora of their own
        assert "@" not in f.read()


def test_no_section_without_perturbations(tmp_path: Path) -> None:
    path = tmp_path / "study.yaml"
    path.write_text(STUDY)
    study = load_study(path, roots=_roots(tmp_path))
    out = tmp_path / "out"
    _fake_run(out / "runs" / "A", {"ravdess": _metrics(0.6, 0.58, 96)})
    assert "Robustness to channels" not in write_report(out, study)["markdown"].read_text()
