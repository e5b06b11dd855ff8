"""A study fanned out (`emoshift study --jobs N`, `--launcher slurm`): the same report whatever ran where.

The smallest selection with a distillation pair (`--only L2c`: L2b, then its student L2c, each 2 speaker folds)
runs in parallel (a process pool, submitit's local executor on the SLURM code path) and must give the same
results.csv rows and the same pooled predictions as the sequential reference, start a student only after its
teacher, and land each fold job in RUN/folds/<i>/. The reference is the session's whole study run one
experiment after the other (tests/study/conftest.py: ``full_study``, with the same settings: tests/study/studies.py),
whose L2b and L2c are the same experiments."""

from __future__ import annotations

import csv
import inspect
import re
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from emoshift.cli import app
from emoshift.models import list_models
from emoshift.study import Study, StudyResult, load_study, run_study, write_report
from emoshift.study.launch import LaunchError, LaunchOptions, minutes
from tests.study import studies
from tests.study.studies import CONFIG

CORPORA = ("ravdess", "crema-d")
needs_study_file = pytest.mark.skipif(
    "egemaps" not in list_models(), reason="configs/study.yaml's L0 phases need the acoustic model 'egemaps'"
)


# --------------------------------------------------------------------------------------------------------
# Options (no training)


def test_slurm_options_become_sbatch_lines(tmp_path: Path) -> None:
    from submitit.slurm.slurm import _make_sbatch_string

    options = LaunchOptions.build(
        launcher="slurm",
        slurm={"partition": "gpu", "time_min": "1-02:30", "mem": "32g", "account": "lab", "cpus_per_job": 6},
    )
    assert options.slurm is not None and options.capacity is None  # no cap: every ready job is submitted
    params = options.slurm.parameters("emoshift-L2b-fold0")
    assert set(params) <= set(inspect.signature(_make_sbatch_string).parameters)
    sbatch = _make_sbatch_string(command="python -m x", folder=str(tmp_path / "%j"), **params)
    for line in (
        "--partition=gpu",
        "--time=1590",
        "--mem=32G",
        "--account=lab",
        "--gpus-per-node=1",
        "--cpus-per-task=6",
        "--job-name=emoshift-L2b-fold0",
    ):
        assert f"#SBATCH {line}\n" in sbatch
    assert options.threads() == 6  # torch threads: the job's own CPUs
    no_gpu = LaunchOptions.build(launcher="slurm", slurm={"partition": "cpu", "gpus_per_job": 0})
    assert "gpus_per_node" not in no_gpu.slurm.parameters("x")  # type: ignore[union-attr]


def test_launch_options_are_checked() -> None:
    assert LaunchOptions().sequential and LaunchOptions(jobs=1).sequential
    assert not LaunchOptions(jobs=2).sequential and LaunchOptions(jobs=2).capacity == 2
    assert not LaunchOptions(launcher="local").sequential  # the SLURM code path, even for one job
    assert [minutes(t) for t in ("90", "4:00:00", "1:30", "1-00:00:00", "0:00:30")] == [90, 240, 90, 1440, 1]
    for bad, message in (
        ({"launcher": "slurm"}, "needs --slurm-partition"),
        ({"slurm": {"partition": "p"}}, "need --launcher slurm"),
        ({"jobs": 0}, "jobs"),
        ({"launcher": "slurm", "slurm": {"partition": "p", "time_min": "4h"}}, "[D-]H:MM[:SS]"),
        ({"launcher": "slurm", "slurm": {"partition": "p", "mem": "lots"}}, "32G"),
    ):
        with pytest.raises(LaunchError) as e:
            LaunchOptions.build(**bad)
        assert message in str(e.value) and "\n" not in str(e.value)


@needs_study_file
def test_cli_refuses_mismatched_launch_options(tmp_path: Path) -> None:
    for extra, message in (
        (["--slurm-mem", "8G"], "--slurm-* options need --launcher slurm"),
        (["--launcher", "slurm"], "--launcher slurm needs --slurm-partition"),
        (["--jobs", "0"], "jobs"),
    ):
        result = CliRunner().invoke(app, ["study", str(CONFIG), "-o", str(tmp_path / "out"), *extra])
        assert result.exit_code == 2 and message in result.output, result.output
        assert "Traceback" not in result.output


# --------------------------------------------------------------------------------------------------------
# End to end on the synthetic corpus


@pytest.fixture(scope="module")
def work(synth_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This file's folder; WORK/synth is the session's tiny synthetic pair (tests/conftest.py: read-only here)."""
    root = tmp_path_factory.mktemp("fanout")
    (root / "synth").symlink_to(synth_tiny, target_is_directory=True)
    return root


def _sets(work: Path) -> list[str]:
    return studies.overrides(work / "cache")  # the reference's settings; one feature cache for this file's runs


def _roots(work: Path) -> dict[str, str]:
    return {c: str(work / "synth" / c) for c in CORPORA}


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def _differences(a: list[list[str]], b: list[list[str]], tol: float = 0.0) -> list[str]:
    """Every cell that differs; numbers by more than ``tol`` (results.csv has no timing column: every cell
    counts, exactly)."""
    if [len(r) for r in a] != [len(r) for r in b]:
        return [f"shape {[len(r) for r in a]} vs {[len(r) for r in b]}"]
    out = []
    for i, (ra, rb) in enumerate(zip(a, b, strict=True)):
        for j, (x, y) in enumerate(zip(ra, rb, strict=True)):
            if x != y and not (tol and _close(x, y, tol)):
                out.append(f"row {i} column {j}: {x!r} vs {y!r}")
    return out


def _close(x: str, y: str, tol: float) -> bool:
    try:
        return abs(float(x) - float(y)) <= tol
    except ValueError:
        return False


def _predictions(out: Path, eid: str) -> dict[str, list[list[str]]]:
    """The run's pooled out-of-fold predictions and each fold's own."""
    run = out / "runs" / eid
    files = [*run.glob("predictions/*.csv"), *run.glob("folds/*/predictions/*.csv")]
    return {str(f.relative_to(run)): _rows(f) for f in sorted(files)}


def _same_predictions(a: Path, b: Path, eid: str) -> None:
    """The same utterances, labels, predicted classes and folds; probabilities to 1e-4: a job divides the
    cores among the jobs, and a different number of torch threads sums in another order (last digits)."""
    pa, pb = _predictions(a, eid), _predictions(b, eid)
    assert sorted(pa) == sorted(pb) and len(pa) == 4, (sorted(pa), sorted(pb))  # 2 folds, 2 pooled
    for name in pa:
        assert not _differences(pa[name], pb[name], tol=1e-4), (
            eid,
            name,
            _differences(pa[name], pb[name], 1e-4),
        )


@pytest.fixture(scope="module")
def reference(full_study: tuple[Path, str, float]) -> Path:
    """Every experiment one after the other (the default, --jobs 1): the session's whole study."""
    out, output, _ = full_study
    assert "started" not in output  # no job lines: today's output
    return out


def _expected(reference: Path, *eids: str) -> list[list[str]]:
    """The reference's results.csv: its header and the rows of ``eids``."""
    return [r for r in _rows(reference / "results.csv") if r[0] in ("experiment", *eids)]


@pytest.fixture(scope="module")
def two_jobs(work: Path) -> tuple[Path, Study, StudyResult]:
    """`--only L2c` in a pool of two jobs (run_study, then the report, as the CLI does)."""
    out = work / "two-jobs"
    study = load_study(CONFIG, profile="demo", roots=_roots(work), overrides=_sets(work), only=["L2c"])
    result = run_study(study, out, progress=False, launch=LaunchOptions(jobs=2))
    write_report(out, study, result)
    return out, study, result


@needs_study_file
@pytest.mark.slow
def test_only_runs_the_experiment_and_its_teacher(two_jobs: tuple[Path, Study, StudyResult]) -> None:
    """`--only L2c` ran L2c and its teacher L2b, and nothing else."""
    out, _, _ = two_jobs
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["L2b", "L2c"]
    assert {r[0] for r in _rows(out / "results.csv")[1:]} == {"L2b", "L2c"}
    cfg = yaml.safe_load((out / "runs" / "L2c" / "config.yaml").read_text())
    assert cfg["training"]["distill"]["teacher"] == str(out / "runs" / "L2b")
    md = (out / "report.md").read_text()
    assert "9 not run" in md and "| L4.9 |" in md


@needs_study_file
@pytest.mark.slow
def test_two_jobs_give_the_same_report_teacher_first(
    reference: Path, work: Path, two_jobs: tuple[Path, Study, StudyResult]
) -> None:
    out, study, result = two_jobs
    assert result.ok and {o.status for o in result.outcomes.values()} == {"trained"}

    expected, got = _expected(reference, "L2b", "L2c"), _rows(out / "results.csv")
    assert len(expected) == 5 and not _differences(expected, got), _differences(expected, got)
    changed = [row[:] for row in got]
    changed[3][5] = f"{float(changed[3][5]) + 1e-6:.6f}"
    assert _differences(expected, changed)  # the comparison sees a change in the last digit
    for eid in ("L2b", "L2c"):  # every fold a job of its own in RUN/folds/<i>/, pooled as the sequential run
        assert sorted(p.name for p in (out / "runs" / eid / "folds").iterdir()) == ["0", "1"]
        assert (out / "runs" / eid / "folds" / "1" / "model.safetensors").is_file()
        _same_predictions(reference, out, eid)

    jobs = {j.key: j for j in result.jobs}
    assert set(jobs) == {"L2b/fold0", "L2b/fold1", "L2b", "L2c/fold0", "L2c/fold1", "L2c"}
    assert all(j.status == "done" for j in jobs.values())
    for eid in ("L2b", "L2c"):  # the experiment's job pools once both folds are done
        assert jobs[eid].started >= max(jobs[f"{eid}/fold{i}"].finished for i in (0, 1))
    assert min(jobs[k].started for k in jobs if k.startswith("L2c")) >= jobs["L2b"].finished  # teacher first

    # resumption: nothing to do, no job; then a lost fold of the student: only it and the pooling job run
    again = run_study(study, out, progress=False, launch=LaunchOptions(jobs=2))
    assert again.jobs == [] and {o.status for o in again.outcomes.values()} == {"skipped"}
    (out / "runs" / "L2c" / "done.json").unlink()
    shutil.rmtree(out / "runs" / "L2c" / "folds" / "1")
    fold0 = (out / "runs" / "L2c" / "folds" / "0" / "done.json").stat().st_mtime_ns
    resumed = run_study(study, out, progress=False, launch=LaunchOptions(jobs=2))
    write_report(out, study, resumed)
    assert [j.key for j in resumed.jobs] == ["L2c/fold1", "L2c"]
    assert resumed.outcomes["L2c"].status == "resumed" and resumed.outcomes["L2b"].status == "skipped"
    assert (out / "runs" / "L2c" / "folds" / "0" / "done.json").stat().st_mtime_ns == fold0
    assert not _differences(expected, _rows(out / "results.csv"))


@needs_study_file
@pytest.mark.slow
def test_submitit_local_executor_gives_the_same_results(reference: Path, work: Path) -> None:
    """`--launcher local`: submitit's LocalExecutor, the code path of `--launcher slurm`."""
    out = work / "submitit"
    code, output, _ = studies.run(_roots(work), out, "--only", "L2b", "--launcher", "local", "--jobs", "2")
    assert code == 0, output
    for key in ("L2b/fold0", "L2b/fold1", "L2b"):
        assert f"{key} started (job " in output and f"{key} done in " in output
    assert "L2b trained" in output
    expected = _expected(reference, "L2b")
    assert not _differences(expected, _rows(out / "results.csv"))
    _same_predictions(reference, out, "L2b")
    assert list((out / "jobs").glob("*_0_log.out"))  # each job's log, submitit's files beside the runs


@needs_study_file
@pytest.mark.slow
def test_a_failed_teacher_skips_its_student_with_a_reason(work: Path) -> None:
    out = work / "failing"
    bad = ["--set", "L2b:model.pretrained=/nonexistent/weights", "--set", "L2b:model.width_mult=1.0"]
    code, output, _ = studies.run(_roots(work), out, "--only", "L2c", "--jobs", "2", *bad)
    assert code == 1
    assert "L2b/fold0 failed in" in output and "L2b failed" in output
    assert re.search(r"L2c failed in [0-9:]+: not run: L2b failed", output) and "L2c/fold0" not in output
    assert not (out / "runs" / "L2c").exists()  # the student never started
    assert (out / "errors" / "L2b.txt").read_text().startswith("Traceback")
    md = (out / "report.md").read_text()
    assert "## Errors" in md and "/nonexistent/weights" in md and "not run: L2b failed" in md
