"""``emoshift tune``: an Optuna search over config keys, scored on the validation speakers only.

A trial is the experiment config with the space's values set (:mod:`emoshift.training.tune_space`). It scans
and splits like ``train`` (the same speaker split), builds the family's inputs for the training and validation
utterances only, fits on the training speakers and is scored by the validation speakers: the best validation
UAR over epochs (``val_uar``), or mean CCC (``val_ccc``) for a dimensional task (:func:`objective_metric`).
Nothing of a test speaker is decoded, cached, fed or scored; only the final ``emoshift train OUT/best.yaml``
(printed at the end) touches them. A neural family's trial is pruned between epochs by Optuna's Lightning
callback; a closed-form family (the acoustic functionals) is fitted on the training speakers and scored once.

The study lives in its storage (default ``sqlite:///OUT/tune.db``) and resumes from it: ``--trials N`` is the
number of finished (complete or pruned) trials wanted, so a rerun after a kill continues to N. Any number of
processes or machines pointing at one database storage work on the same search: ``--jobs K`` starts K worker
processes here (threads divided among them); another machine runs the same command with the same
``--storage`` (a database server, or sqlite on a shared disk for a few workers). Each process writes the
outputs from the whole study when it ends::

    OUT/trials/<number>/        the trial's run directory (config.yaml, splits/, log.csv)
    OUT/best.yaml               the best trial's full config (emoshift train loads it)
    OUT/trials.csv              number, state, value, params (JSON), duration (s): one row per trial
    OUT/plots/optimization_history.png, OUT/plots/param_importances.png
"""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing as mp
import os
import shlex
import shutil
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from emoshift.config import ConfigError, ExperimentConfig, build_config, save_config
from emoshift.core.errors import EmoshiftError
from emoshift.core.io import atomic_write_csv
from emoshift.core.progress import clock, say
from emoshift.core.rundir import RunDir
from emoshift.corpora import Scan
from emoshift.models import CONFIG_CHECKS, family_of
from emoshift.models.families import FitData, NeuralFamily
from emoshift.training.pipeline import model_info, prepare_data, scan_corpora, set_up_fit, start_run
from emoshift.training.tune_space import Param, apply_params, load_space

log = logging.getLogger("emoshift.training.tune")

TRIALS_COLUMNS = ["number", "state", "value", "params", "duration"]
MEMORY = ("memory", "sqlite:///:memory:", "sqlite://")  # storages that live in this process only


class TuneError(EmoshiftError, RuntimeError):
    """The search cannot start or continue (message is for the user)."""


class TrialRejected(Exception):
    """A trial's sampled values make a config the config itself rejects: the trial fails, the search goes on."""


def objective_metric(cfg: ExperimentConfig) -> str:
    """What a trial maximises, as the Lightning module logs it: ``val_ccc`` (dimensional) or ``val_uar``."""
    return cfg.task_kind.monitor


def check_tunable(cfg: ExperimentConfig) -> None:
    """TuneError when ``cfg`` leaves no validation speakers to select on, or cannot be scored by them."""
    from emoshift.training.folds import runs_all_folds

    if runs_all_folds(cfg):
        raise TuneError(
            f"data.split.method {cfg.data.split.method} without data.split.fold trains every fold, and every "
            "speaker is a test speaker of some fold, so no speaker is left to select on: set "
            "data.split.fold=i (--set data.split.fold=0) to tune on fold i's validation speakers"
        )


# ------------------------------------------------------------------------------------------------ one trial


class BestMetric(L.Callback):
    """The best value of ``monitor`` over the validation epochs (the trial's objective)."""

    def __init__(self, monitor: str) -> None:
        self.monitor = monitor
        self.value = -float("inf")

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking:
            return
        v = trainer.callback_metrics.get(self.monitor)
        if v is not None and float(v) > self.value:
            self.value = float(v)


def selection_scans(scans: dict[str, Scan], splits: dict[str, Any]) -> dict[str, Scan]:
    """Each scan cut to its training and validation utterances, so no store ever reads a test speaker."""
    keep = {"train", "val"}
    return {
        name: dataclasses.replace(sc, utterances=[u for u in sc.utterances if splits[name].assignment.get(u.id) in keep])
        for name, sc in scans.items()
    }


def fit_trial(
    cfg: ExperimentConfig,
    run_dir: str | os.PathLike[str],
    *,
    callbacks: Sequence[Any] = (),
    progress: bool = False,
    scans: dict[str, Scan] | None = None,
) -> float:
    """Train ``cfg`` into ``run_dir`` on its training speakers and return its score on the validation speakers
    (:func:`objective_metric`); the test speakers are never read. ``callbacks`` go to Lightning (pruning)."""
    from emoshift.training.fit import fit_lightning

    check_tunable(cfg)
    run = RunDir.of(run_dir)
    fingerprint, _ = start_run(cfg, run)
    L.seed_everything(cfg.training.seed, workers=True, verbose=False)
    prep = prepare_data(cfg, run, progress=progress, scans=scans)  # scan (unless given) + speaker split
    prep.scans = selection_scans(prep.scans, prep.splits)
    family, model, data = set_up_fit(cfg, prep, progress=progress)
    if isinstance(family, NeuralFamily):
        metric = objective_metric(cfg)
        best = BestMetric(metric)
        family.fit(
            cfg, data, run, model=model, progress=progress, callbacks=[best, *callbacks], fit_loop=fit_lightning
        )
        if best.value == -float("inf"):
            raise TuneError(f"training {cfg.model.name} logged no {metric}: nothing to select on")
        return best.value
    return _closed_form_score(cfg, data, run, model, prep, fingerprint)


def _closed_form_score(cfg: ExperimentConfig, data: FitData, run: RunDir, model: Any, prep: Any, fingerprint: str) -> float:
    """A family without epochs (its ``train`` fits on training + validation speakers): fit on the training
    speakers only, then score its predictions on the validation speakers: UAR, or mean CCC over the targets of a
    dimensional task (the same metric :func:`objective_metric` names for the neural families)."""
    from emoshift.evaluation.metrics import classification_metrics
    from emoshift.evaluation.regression import ccc
    family = family_of(cfg.model.name, cfg.model.mode)
    fitted = family.fit(cfg, dataclasses.replace(data, val=[]), run, model=model, progress=False)
    info = model_info(cfg, family, fitted.model, prep, fingerprint)
    kept, logits, _ = family.outputs(
        fitted.model, info, [it.utt for it in data.val], cache_dir=cfg.data.cache_dir,
        batch_size=cfg.evaluation.batch_size, device=torch.device("cpu"), advance=lambda n: None, progress=False,
    )
    if not kept:
        raise TuneError("no validation utterance could be scored")
    if cfg.task_kind.rated:
        rated = {it.utt.id: it.target for it in data.val}
        truth = np.array([rated[u.id] for u in kept], np.float64)  # (N, T)
        values = np.asarray(logits, np.float64)  # (N, T): a dimensional head's outputs are the ratings
        return float(np.mean([ccc(truth[:, j], values[:, j]) for j in range(truth.shape[1])]))
    labels = {it.utt.id: data.labels[it.label] for it in data.val}
    pred = [data.labels[i] for i in logits.argmax(axis=1)]
    return float(classification_metrics([labels[u.id] for u in kept], pred, data.labels)["uar"])


# ------------------------------------------------------------------------------------------------ the study


@dataclass(frozen=True)
class TuneSpec:
    """Everything a worker process needs (picklable): the base config, the space, where the study lives."""

    base: dict[str, Any]
    space: tuple[Param, ...]
    out: Path
    storage: str | None  # an RDB URL; None: in memory (this process only)
    study_name: str
    trials: int
    metric: str
    seed: int

    def trial_config(self, params: dict[str, Any], *, quiet: bool = False) -> ExperimentConfig:
        extra = {"trainer.progress": False} if quiet else {}
        return build_config(apply_params(self.base, {**params, **extra}), checks=CONFIG_CHECKS)


@dataclass(frozen=True)
class TuneResult:
    out: Path
    metric: str
    best_value: float | None
    best_params: dict[str, Any]
    best_trial: int | None
    counts: dict[str, int]  # state -> trials
    command: str | None  # the final emoshift train (None when no trial completed)


def resolve_storage(storage: str | None, out: Path, jobs: int) -> str | None:
    """The study's RDB URL (default: sqlite in OUT), or None for an in-memory study (one process only)."""
    if storage is None:
        return f"sqlite:///{(out / 'tune.db').resolve()}"
    if storage.strip() in MEMORY:
        if jobs > 1:
            raise TuneError(f"--jobs {jobs} needs a database storage the workers share, not {storage!r}: "
                            "drop --storage (sqlite in --out) or pass --storage sqlite:///tune.db")
        return None
    if "://" not in storage:
        raise TuneError(f"--storage expects a database URL such as sqlite:///tune.db, got {storage!r}")
    return storage


def _storage(url: str | None) -> Any:
    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeats
    if url is None:
        return optuna.storages.InMemoryStorage()
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    try:  # heartbeats: a trial whose process was killed is marked failed instead of staying "running"
        return optuna.storages.RDBStorage(url, engine_kwargs=engine, heartbeat_interval=30, grace_period=120)
    except Exception as e:  # noqa: BLE001 - SQLAlchemy's many errors: a bad URL or an unreachable database
        raise TuneError(f"--storage {url}: cannot open it ({str(e).splitlines()[0]})") from None


def _identity(spec: TuneSpec) -> dict[str, Any]:
    """What a study must keep across reruns and workers: the base config and the space."""
    cfg = build_config(spec.base, checks=CONFIG_CHECKS)
    return {"config": cfg.fingerprint(exclude_roots=True),
            "space": [dataclasses.asdict(p) for p in spec.space], "metric": spec.metric}


def pruning_callback(trial: Any, monitor: str) -> Any:
    """Optuna's Lightning pruning callback, reporting and pruning at the end of the epoch instead of at the end of
    validation: the trial's ``log.csv`` row for an epoch is written then (after its checkpoint, by
    :class:`emoshift.training.fit.EpochLog`), so a pruned trial's log still holds the epoch whose value it
    reported. Lightning runs the epoch-end hooks of :class:`Checkpoint` callbacks after all others, in list
    order; as one too, appended after EpochLog, it runs last."""
    from lightning.pytorch.callbacks import Checkpoint
    from optuna_integration import PyTorchLightningPruningCallback

    class PruneAfterTheEpoch(PyTorchLightningPruningCallback, Checkpoint):  # type: ignore[misc]
        def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
            pass  # see on_train_epoch_end

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            super().on_validation_end(trainer, pl_module)

    return PruneAfterTheEpoch(trial, monitor=monitor)


def open_study(spec: TuneSpec, *, storage: Any, seed: int, pruner: Any = None) -> Any:
    """Create or load the study (load_if_exists); TuneError when it holds another config's or space's search."""
    import optuna

    study = optuna.create_study(
        study_name=spec.study_name, storage=storage, direction="maximize", load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=seed, constant_liar=True),
        pruner=pruner if pruner is not None else optuna.pruners.MedianPruner(n_startup_trials=3),
    )
    ident = json.loads(json.dumps(_identity(spec)))
    held = study.user_attrs.get("emoshift")
    if held is None:
        study.set_user_attr("emoshift", ident)
    elif held != ident:
        what = "config" if held.get("config") != ident["config"] else "search space"
        raise TuneError(f"study {spec.study_name!r} in {spec.storage} is a search of another {what}: "
                        "use another --out, --storage or --study-name")
    return study


FINISHED = ("COMPLETE", "PRUNED")


def _counts(study: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    return counts


def _finished(study: Any) -> int:
    c = _counts(study)
    return sum(c.get(s, 0) for s in FINISHED)


# ------------------------------------------------------------------------------------------------ a worker


class Reporter:
    """One line per finished trial (on stderr): number, params, value, best so far, ETA to ``--trials``."""

    def __init__(self, spec: TuneSpec, jobs: int, *, enabled: bool) -> None:
        self.spec, self.jobs, self.enabled = spec, jobs, enabled

    def __call__(self, study: Any, trial: Any) -> None:
        if not self.enabled:
            return
        params = ", ".join(f"{k}={_short(v)}" for k, v in trial.params.items())
        if trial.state.name == "COMPLETE":
            outcome = f"{self.spec.metric} {trial.value:.4f}"
        elif trial.state.name == "PRUNED":
            outcome = f"pruned after {len(trial.intermediate_values)} epoch(s)"
        else:
            outcome = f"failed ({trial.user_attrs.get('rejected', trial.state.name.lower())})"
        done = study.get_trials(deepcopy=False, states=_states(FINISHED))
        best = _best(study)
        best_text = f"best {best.value:.4f} (trial {best.number})" if best is not None else "no best yet"
        times = [t.duration.total_seconds() for t in done if t.duration is not None]
        left = max(0, self.spec.trials - len(done))
        eta = f", ETA {clock(sum(times) / len(times) * left / self.jobs)}" if times and left else ""
        took = f"{trial.duration.total_seconds():.1f} s" if trial.duration is not None else ""
        say(f"trial {trial.number} [{len(done)}/{self.spec.trials}]: {params} -> {outcome}; {best_text}; {took}{eta}",
            stderr=True)


def _short(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _states(names: Sequence[str]) -> tuple[Any, ...]:
    from optuna.trial import TrialState

    return tuple(TrialState[n] for n in names)


def _best(study: Any) -> Any:
    complete = study.get_trials(deepcopy=False, states=_states(("COMPLETE",)))
    return max(complete, key=lambda t: t.value) if complete else None


class Budget:
    """Stops the search once ``trials`` trials are finished (counted in the storage, so a rerun continues to
    N), or when this process has seen ``trials`` failures (a space whose configs keep failing)."""

    def __init__(self, trials: int) -> None:
        self.trials, self.failed = trials, 0

    def __call__(self, study: Any, trial: Any) -> None:
        self.failed += trial.state.name == "FAIL"
        if _finished(study) >= self.trials or self.failed >= self.trials:
            study.stop()


def make_objective(spec: TuneSpec, *, progress: bool) -> Callable[[Any], float]:
    """The objective: the trial's config -> :func:`fit_trial` in ``OUT/trials/<number>/`` (scans reused)."""
    scans: dict[str, dict[str, Scan]] = {}

    def objective(trial: Any) -> float:
        params = {p.key: p.suggest(trial) for p in spec.space}
        try:
            cfg = spec.trial_config(params, quiet=True)
        except ConfigError as e:  # a combination the config refuses: this trial fails, the search goes on
            trial.set_user_attr("rejected", str(e))
            raise TrialRejected(str(e)) from None
        key = json.dumps({"corpora": cfg.data.corpora, "roots": cfg.data.roots, "labels": cfg.data.labels,
                          "options": repr(cfg.data.scan_options())}, sort_keys=True)
        if key not in scans:
            scans[key] = scan_corpora(cfg, cfg.data.corpora, progress=progress)
        run_dir = spec.out / "trials" / str(trial.number)
        callbacks = []
        if isinstance(family_of(cfg.model.name, cfg.model.mode), NeuralFamily):
            callbacks.append(pruning_callback(trial, spec.metric))
        try:
            return fit_trial(cfg, run_dir, callbacks=callbacks, progress=progress, scans=scans[key])
        finally:  # a trial never resumes (a rerun starts new ones): its checkpoints are dead weight
            shutil.rmtree(RunDir.of(run_dir).checkpoints, ignore_errors=True)

    return objective


def run_worker(spec: TuneSpec, *, worker: int = 0, jobs: int = 1, progress: bool = True,
               pruner: Any = None, study: Any = None) -> Any:
    """Run trials against the study until it holds ``spec.trials`` finished ones; returns the study."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    if study is None:
        storage = _storage(spec.storage)
        probe = optuna.load_study(study_name=spec.study_name, storage=storage)
        # The sampler's seed: training.seed, moved on by the trials already held and by the worker's index, so
        # a rerun or a second worker does not replay the same random start-up points.
        seed = spec.seed + len(probe.trials) + 1000 * worker
        study = open_study(spec, storage=storage, seed=seed, pruner=pruner)
    if _finished(study) < spec.trials:
        study.optimize(make_objective(spec, progress=False), n_trials=None, catch=(TrialRejected,),
                       callbacks=[Budget(spec.trials), Reporter(spec, jobs, enabled=progress)],
                       gc_after_trial=True)
    return study


def _worker_main(spec: TuneSpec, worker: int, jobs: int, progress: bool) -> None:
    """A spawned worker process: its share of the CPU threads, then :func:`run_worker`."""
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // jobs))
    try:
        run_worker(spec, worker=worker, jobs=jobs, progress=progress)
    except EmoshiftError as e:
        print(f"error: worker {worker}: {e}", file=sys.stderr, flush=True)
        sys.exit(2)


# ------------------------------------------------------------------------------------------------ tune


def tune(
    cfg: ExperimentConfig,
    space_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    trials: int,
    storage: str | None = None,
    jobs: int = 1,
    study_name: str | None = None,
    progress: bool = True,
    pruner: Any = None,
) -> TuneResult:
    """Search the space of ``space_path`` around ``cfg`` until the study holds ``trials`` finished trials, then
    write best.yaml, trials.csv and the plots into ``out`` (see the module docstring)."""
    if trials < 1 or jobs < 1:
        raise TuneError(f"--trials and --jobs must be at least 1 (got {trials} and {jobs})")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # one line per trial is ours (Reporter)
    check_tunable(cfg)
    base = cfg.to_dict()

    def check(data: dict[str, Any]) -> None:
        try:
            check_tunable(build_config(data, checks=CONFIG_CHECKS))
        except TuneError as e:
            raise ConfigError(str(e)) from None

    space = tuple(load_space(space_path, base, check))  # every key checked before any trial
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    spec = TuneSpec(base, space, out, resolve_storage(storage, out, jobs), study_name or cfg.name, trials,
                    objective_metric(cfg), cfg.training.seed)
    study = open_study(spec, storage=_storage(spec.storage), seed=spec.seed, pruner=pruner)  # checks identity
    if spec.storage is None or jobs == 1:
        study = run_worker(spec, progress=progress, pruner=pruner,
                           study=study if spec.storage is None else None)
    else:
        _spawn_workers(spec, jobs, progress=progress)
        study = optuna.load_study(study_name=spec.study_name, storage=_storage(spec.storage))
    return write_outputs(study, spec, progress=progress)


def _spawn_workers(spec: TuneSpec, jobs: int, *, progress: bool) -> None:
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_worker_main, args=(spec, i, jobs, progress), daemon=False) for i in range(jobs)]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join()
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join()
    bad = [f"worker {i} exited with code {p.exitcode}" for i, p in enumerate(procs) if p.exitcode]
    if bad:
        raise TuneError("; ".join(bad) + " (its error is printed above; rerun to continue the search)")


# ------------------------------------------------------------------------------------------------ outputs


def write_outputs(study: Any, spec: TuneSpec, *, progress: bool) -> TuneResult:
    """best.yaml, trials.csv and the plots, from every trial in the storage; the final command."""
    rows = [
        {"number": t.number, "state": t.state.name, "value": "" if t.value is None else f"{t.value:.6f}",
         "params": json.dumps(t.params, sort_keys=True),
         "duration": "" if t.duration is None else f"{t.duration.total_seconds():.2f}"}
        for t in study.get_trials(deepcopy=False)
    ]
    atomic_write_csv(spec.out / "trials.csv", TRIALS_COLUMNS, rows)
    best = _best(study)
    command = None
    if best is not None:
        cfg = spec.trial_config(dict(best.params))
        save_config(cfg, spec.out / "best.yaml")
        command = final_command(cfg, spec.out)
    write_plots(study, spec.out / "plots", progress=progress)
    return TuneResult(spec.out, spec.metric, None if best is None else float(best.value),
                      {} if best is None else dict(best.params), None if best is None else best.number,
                      _counts(study), command)


def final_command(cfg: ExperimentConfig, out: Path) -> str:
    """The one command that touches the test speakers: train the best config, then evaluate it."""
    corpora = " ".join(f"--corpus {shlex.quote(f'{n}={cfg.data.roots[n]}')}" for n in cfg.data.corpora
                       if n in cfg.data.roots)
    return f"emoshift train {shlex.quote(str(out / 'best.yaml'))} {corpora} --out {shlex.quote(str(out / 'best-run'))}"


def write_plots(study: Any, plots: Path, *, progress: bool) -> list[Path]:
    """optimization_history.png (at least one complete trial) and param_importances.png (at least two, and
    scores that differ: when every trial scored the same no parameter explains anything, and Optuna's equal
    shares would read as importance); a plot that cannot be drawn is skipped with its reason printed."""
    import optuna.visualization.matplotlib as ovm

    from emoshift.evaluation.plots import save_figure

    finished = study.get_trials(deepcopy=False, states=_states(("COMPLETE",)))
    complete = len(finished)
    scores = {t.value for t in finished}
    drawers: dict[str, tuple[Callable[[Any], Any], int]] = {
        "optimization_history": (ovm.plot_optimization_history, 1),
        "param_importances": (ovm.plot_param_importances, 2),
    }
    written = []
    for name, (draw, need) in drawers.items():
        if complete < need:
            say(f"{name}.png skipped: it needs at least {need} complete trial(s), the study has {complete}", enabled=progress, stderr=True)
            continue
        if name == "param_importances" and len(scores) == 1:
            say(f"{name}.png skipped: every complete trial scored the same ({next(iter(scores)):.4g}), so there is "
                "no importance to show (no parameter changed the score)", enabled=progress, stderr=True)
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ax = draw(study)
            except (ValueError, RuntimeError, ZeroDivisionError) as e:  # e.g. no variance to attribute
                say(f"{name}.png skipped: {e}", enabled=progress, stderr=True)
                continue
        fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
        written.append(save_figure(fig, plots / f"{name}.png"))
    return written




