"""Experiment tracking (``tracking:`` in the config): the Lightning loggers a run trains with, and what they do
not log (the config as parameters, the final metrics, the plots and the model card, the git commit).

``tracking.backend``:

* ``csv`` (default): nothing besides the run directory (``RUN/log.csv`` is written whatever the backend).
* ``tensorboard``: Lightning's TensorBoardLogger, event files in ``RUN/tensorboard/`` (or ``<uri>/<experiment>/
  <run name>/``); the flattened config as its hyperparameters.
* ``mlflow``: one MLflow run per run directory (a speaker cross-validation logs the pooled run, its folds nested
  under it with an ``emoshift.fold`` tag). The store is ``tracking.uri``, by default
  ``sqlite:///<run parent>/mlflow.db`` with artefacts in ``<run parent>/mlartifacts/`` (no server; MLflow 3
  refuses a plain file store). Per-epoch metrics come through Lightning's MLFlowLogger; this module logs the
  resolved config (flattened, dotted keys) as parameters, ``<corpus>/<metric>`` and ``<corpus>/<metric>_ci95_lo``
  / ``_hi`` from ``RUN/metrics/<corpus>.json``, ``RUN/plots/*``, ``RUN/README.md`` and ``RUN/config.yaml`` as
  artefacts, and the tag ``mlflow.source.git.commit`` when the working directory is a git checkout. The run's id
  is kept in ``RUN/tracking.json`` so a resumed run logs into the same MLflow run.

mlflow is imported only by the mlflow backend (its import takes seconds). A server that cannot be reached is
one :class:`TrackingError` line before anything trains, after a short timeout.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emoshift.core.errors import EmoshiftError, TrainingInterrupted
from emoshift.core.extras import require
from emoshift.core.io import atomic_write_json
from emoshift.core.rundir import RunDir

if TYPE_CHECKING:
    from emoshift.config import ExperimentConfig

log = logging.getLogger("emoshift.training.tracking")

PROBE_TIMEOUT_S = 5  # how long the first request to a tracking server may take before the run gives up
_BATCH = 100  # MLflow takes at most 100 parameters (1000 metrics) per log_batch
_DDP_RANKS = ("RANK", "LOCAL_RANK", "NODE_RANK")


class TrackingError(EmoshiftError):
    """The tracking backend cannot be used (an unreachable server, a store MLflow refuses)."""


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"training": {"lr": 0.001}}`` -> ``{"training.lr": "0.001"}``; an empty mapping stays one key."""
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = json.dumps(value) if isinstance(value, list | dict) else str(value)
    return out


def final_metrics(metrics: dict[str, Any], prefix: str) -> dict[str, float]:
    """The numbers of a ``metrics/<corpus>.json`` as MLflow metrics: ``<prefix>uar``, ``<prefix>uar_ci95_lo`` /
    ``_hi`` (none where the interval is null), nested mappings as ``<prefix>fold_mean/uar``; lists (the
    confusion matrix, the per-fold scores) and text are left out."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        name = prefix + _metric_key(str(key))
        if key == "ci95" and isinstance(value, dict):
            for metric, ci in value.items():
                if isinstance(ci, list | tuple) and len(ci) == 2 and all(_is_number(v) for v in ci):
                    out[f"{prefix}{_metric_key(str(metric))}_ci95_lo"] = float(ci[0])
                    out[f"{prefix}{_metric_key(str(metric))}_ci95_hi"] = float(ci[1])
        elif isinstance(value, dict):
            out.update(final_metrics(value, f"{name}/"))
        elif _is_number(value):
            out[name] = float(value)
    return out


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _metric_key(text: str) -> str:
    return re.sub(r"[^\w\-. /]", "_", text)  # what MLflow accepts in a key


def git_commit(cwd: Path | None = None) -> str | None:
    """The commit checked out in the working directory, or None (not a git checkout, no git)."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", commit) else None


def in_study(cfg: ExperimentConfig, *, out: Path, experiment_id: str) -> ExperimentConfig:
    """``cfg`` tracked as experiment ``experiment_id`` of the study in ``out``: every run of the study under one
    MLflow experiment (``tracking.experiment``, by default the output folder's name), tagged
    ``emoshift.experiment_id``; the default local store is ``OUT/mlflow.db``. A csv config is returned as is."""
    from emoshift.config import build_config

    if cfg.tracking.backend == "csv":
        return cfg
    data = cfg.to_dict()
    tracking = data["tracking"]
    tracking["experiment"] = tracking["experiment"] or Path(out).resolve().name
    tracking["tags"] = {**tracking["tags"], "emoshift.experiment_id": experiment_id}
    if cfg.tracking.backend == "mlflow" and not tracking["uri"]:
        tracking["uri"] = f"sqlite:///{Path(out).resolve() / 'mlflow.db'}"
    return build_config(data)


# --------------------------------------------------------------------------------------------------------
# trackers: csv (nothing), tensorboard, mlflow


class Tracker:
    """The csv backend, and the interface: nothing is logged besides the run directory."""

    def loggers(self) -> list[Any]:
        """The Lightning loggers the fit gets (none: RUN/log.csv is written by the epoch callback)."""
        return []

    def log_results(self, run: RunDir) -> None:
        """After evaluation: the final metrics and artefacts of the finished ``run``."""

    def end(self, status: str = "FINISHED") -> None:
        """The run is over (FINISHED, FAILED or KILLED)."""

    def child(self, cfg: ExperimentConfig, run: RunDir, *, fold: int) -> Tracker:
        """The tracker of fold ``fold`` of this (pooled) run."""
        return start_tracking(cfg, run)

    @contextmanager
    def active(self) -> Iterator[Tracker]:
        """Ends the tracked run FINISHED, or FAILED / KILLED when the body raises."""
        try:
            yield self
        except (KeyboardInterrupt, TrainingInterrupted):
            self.end("KILLED")
            raise
        except BaseException:
            self.end("FAILED")
            raise
        self.end("FINISHED")


class TensorBoardTracker(Tracker):
    """Event files from Lightning's TensorBoardLogger (per-epoch metrics) plus the config as hyperparameters."""

    def __init__(self, cfg: ExperimentConfig, run: RunDir) -> None:
        self.cfg = cfg
        self.run = run

    def loggers(self) -> list[Any]:
        from lightning.pytorch.loggers import TensorBoardLogger

        uri = self.cfg.tracking.uri
        if uri:
            name = self.cfg.tracking.experiment or self.cfg.name
            version = self.cfg.name if name != self.cfg.name else ""
            logger = TensorBoardLogger(uri, name=name, version=version, default_hp_metric=False)
        else:
            folder = self.run.tensorboard_dir.name
            logger = TensorBoardLogger(str(self.run.path), name=folder, version="", default_hp_metric=False)
        logger.log_hyperparams(flatten(self.cfg.to_dict()))
        return [logger]


def start_tracking(
    cfg: ExperimentConfig, run: RunDir, *, parent: Tracker | None = None, fold: int | None = None
) -> Tracker:
    """The tracker of one run directory (``parent`` and ``fold``: a fold of a pooled run)."""
    if parent is not None and fold is not None:
        return parent.child(cfg, run, fold=fold)
    if any(os.environ.get(v, "0") not in ("", "0") for v in _DDP_RANKS):
        return Tracker()  # a DDP worker: rank 0 tracks the run
    if cfg.tracking.backend in ("tensorboard", "mlflow"):
        require("track", f"tracking.backend: {cfg.tracking.backend}")
    if cfg.tracking.backend == "tensorboard":
        return TensorBoardTracker(cfg, run)
    if cfg.tracking.backend == "mlflow":
        return MlflowTracker.open(cfg, run)
    return Tracker()


class MlflowTracker(Tracker):
    """One MLflow run; see the module docstring."""

    def __init__(self, client: Any, uri: str, experiment_id: str, run_id: str) -> None:
        self.client = client
        self.uri = uri
        self.experiment_id = experiment_id
        self.run_id = run_id

    @classmethod
    def open(
        cls,
        cfg: ExperimentConfig,
        run: RunDir,
        *,
        uri: str | None = None,
        experiment_id: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> MlflowTracker:
        """The MLflow run of ``run``: the one in RUN/tracking.json (a resumed run), or a new one."""
        uri = uri or store_uri(cfg, run)
        client = _client(uri)
        with _short_timeouts(uri):
            if experiment_id is None:
                experiment_id = _experiment_id(client, cfg.tracking.experiment or cfg.name, uri)
            run_id = _resumable(client, run, uri)
            all_tags = {**cfg.tracking.tags, **(tags or {}), "emoshift.run_dir": str(run.path.resolve())}
            commit = git_commit()
            if commit:
                all_tags["mlflow.source.git.commit"] = commit
            if run_id is None:
                run_id = client.create_run(experiment_id, run_name=cfg.name, tags=all_tags).info.run_id
                atomic_write_json(run.tracking, {"backend": "mlflow", "uri": uri, "run_id": run_id})
            else:
                client.update_run(run_id, status="RUNNING")
            tracker = cls(client, uri, experiment_id, run_id)
            tracker._log_params(flatten(cfg.to_dict()))
        return tracker

    def loggers(self) -> list[Any]:
        from lightning.pytorch.loggers import MLFlowLogger

        return [MLFlowLogger(tracking_uri=self.uri, run_id=self.run_id)]

    def child(self, cfg: ExperimentConfig, run: RunDir, *, fold: int) -> Tracker:
        tags = {"mlflow.parentRunId": self.run_id, "emoshift.fold": str(fold)}
        return MlflowTracker.open(cfg, run, uri=self.uri, experiment_id=self.experiment_id, tags=tags)

    def log_results(self, run: RunDir) -> None:
        """The run directory is complete by now: a store that fails here costs the tracked copy, not the run,
        so the failure is one warning line."""
        try:
            self._log_results(run)
        except Exception as e:
            log.warning(
                "MLflow run %s at %s: final metrics and artefacts not logged (%s)",
                self.run_id,
                self.uri,
                " ".join(str(e).split())[:300] or type(e).__name__,
            )

    def _log_results(self, run: RunDir) -> None:
        from mlflow.entities import Metric

        metrics: dict[str, float] = {}
        for corpus in run.metrics_corpora():
            metrics.update(final_metrics(json.loads(run.metrics(corpus).read_text()), f"{corpus}/"))
        entries = [Metric(k, v, _now_ms(), 0) for k, v in sorted(metrics.items())]
        for i in range(0, len(entries), _BATCH):
            self.client.log_batch(self.run_id, metrics=entries[i : i + _BATCH])
        for path in sorted(run.plots_dir.glob("*")) if run.plots_dir.is_dir() else []:
            if path.is_file():
                self.client.log_artifact(self.run_id, str(path), artifact_path="plots")
        for path in (run.path / "README.md", run.config):
            if path.is_file():
                self.client.log_artifact(self.run_id, str(path))

    def end(self, status: str = "FINISHED") -> None:
        try:
            self.client.set_terminated(self.run_id, status)
        except Exception as e:
            log.warning(
                "MLflow run %s at %s: not marked %s (%s)",
                self.run_id,
                self.uri,
                status,
                " ".join(str(e).split())[:300] or type(e).__name__,
            )

    def _log_params(self, params: dict[str, str]) -> None:
        """The parameters this run does not hold yet (MLflow refuses to change a logged one: a resumed run
        keeps the values it started with)."""
        from mlflow.entities import Param

        held = self.client.get_run(self.run_id).data.params
        todo = [Param(k, v) for k, v in params.items() if k not in held]
        for i in range(0, len(todo), _BATCH):
            self.client.log_batch(self.run_id, params=todo[i : i + _BATCH])


def store_uri(cfg: ExperimentConfig, run: RunDir) -> str:
    """``tracking.uri``, or the local store next to the run: ``sqlite:///<run parent>/mlflow.db``."""
    if cfg.tracking.uri:
        return cfg.tracking.uri
    parent = run.path.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{parent / 'mlflow.db'}"


def _local_artifacts(uri: str) -> str | None:
    """A local SQLite store keeps its artefacts beside it (``<folder>/mlartifacts``); a server decides itself."""
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri()


def _client(uri: str) -> Any:
    import logging

    from mlflow import MlflowClient

    for name in ("mlflow.store.db.utils", "alembic"):  # "Creating initial MLflow database tables..." etc.
        logging.getLogger(name).setLevel(logging.WARNING)
    return MlflowClient(tracking_uri=uri)


@contextmanager
def _short_timeouts(uri: str) -> Iterator[None]:
    """Run the body with one try and a short timeout per request; any MLflow or connection error becomes one
    TrackingError line (the body makes the run's first requests)."""
    saved = {k: os.environ.get(k) for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")}
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(PROBE_TIMEOUT_S)
    try:
        yield
    except (EmoshiftError, KeyboardInterrupt):
        raise
    except Exception as e:
        reason = " ".join(str(e).split())[:300] or type(e).__name__
        raise TrackingError(f"MLflow tracking at {uri} cannot be used: {reason}") from None
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _experiment_id(client: Any, name: str, uri: str) -> str:
    """The id of experiment ``name``, created (with local artefacts for a local store) when missing."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            raise TrackingError(
                f"MLflow experiment {name!r} at {uri} is deleted: restore it or choose another "
                "tracking.experiment"
            )
        return str(found.experiment_id)
    try:
        return str(client.create_experiment(name, artifact_location=_local_artifacts(uri)))
    except MlflowException:  # another process created it meanwhile
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return str(found.experiment_id)


def _resumable(client: Any, run: RunDir, uri: str) -> str | None:
    """The MLflow run id RUN/tracking.json names, when it is in the same store and not deleted."""
    from mlflow.exceptions import MlflowException

    try:
        saved = json.loads(run.tracking.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or saved.get("uri") != uri or not saved.get("run_id"):
        return None
    try:
        found = client.get_run(str(saved["run_id"]))
    except MlflowException:
        return None
    return None if found.info.lifecycle_stage == "deleted" else str(found.info.run_id)


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)
