"""The study: the phases of the original research study as named, re-runnable experiments.

``configs/study.yaml`` holds

- ``defaults``: an overlay on :class:`~emoshift.config.ExperimentConfig` shared by every experiment;
- ``profiles``: named overlays (``demo``, ``paper``) on the defaults and, optionally, per experiment;
- ``experiments``: one entry per phase, each a small overlay (``config``) with display metadata (title,
  architecture, data strategy, the study's own reported accuracy). ``extends: L4.5`` starts from another
  experiment's overlay; ``audit_of: L2`` makes an experiment that trains nothing and audits another one's run.

An experiment's config is resolved in this order (later wins)::

    defaults -> profile.defaults -> for each experiment in the extends chain, root first:
    (its config -> profile.experiments[its id]) -> --set key=value -> --set ID:key=value

A distillation teacher given as an experiment id (``training.distill.teacher: L2b``) becomes the run directory
``OUT/runs/L2b`` and that experiment runs first. When a later layer changes ``training.epochs`` of an
experiment with multi-stage fine-tuning (``training.stages``, set by an earlier layer), the stages are fitted
to the new total: the schedule is cut after that many epochs, or its last stage is lengthened.

:func:`load_study` validates all of it up front (one-line :class:`StudyError` messages); :func:`run_study`
trains, evaluates and audits into ``OUT/runs/<id>/``; :func:`write_report` writes ``OUT/report.md``,
``OUT/report.html`` and ``OUT/results.csv``.

Resuming: an experiment whose ``done.json`` fingerprint equals its resolved config's is skipped (only
corpora it has not been evaluated or audited on yet are added). An interrupted run of the same config is
resumed. A run of a *different* config (or one whose distillation teacher was retrained since) is moved aside
to ``OUT/stale/<id>-<time>/`` and the experiment is trained afresh: nothing is deleted. A teacher inside the
study counts by experiment id, not absolute path, so a copied or moved output folder is still recognised.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from emoshift.config import (
    ConfigError,
    ExperimentConfig,
    apply_overrides,
    build_config,
    explain,
    merge,
    parse_override,
    read_yaml,
)
from emoshift.core.io import atomic_write_bytes, atomic_write_json, atomic_write_text

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class StudyError(ConfigError):
    """The study file, its profile, corpus roots or ``--only`` selection cannot be used (one-line message)."""


# ---------------------------------------------------------------------------------------------------------
# The study file (configs/study.yaml), validated as written


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _canonical_corpus(name: str) -> str:
    from emoshift.corpora import canonical_name

    try:
        return canonical_name(name)
    except KeyError as e:
        raise ValueError(str(e.args[0])) from None


class AuditSpec(_Strict):
    """Arguments of :func:`emoshift.evaluation.audit.audit_run`; groupings a corpus does not record are reported as such."""

    by: list[str] = Field(default_factory=lambda: ["gender", "age_band", "race", "ethnicity"])
    age_bands: list[int] | None = None
    n_resamples: int = Field(default=1000, ge=1, description="bootstrap resamples for the per-group CIs")
    n_permutations: int = Field(default=1000, ge=1, description="permutations for the group-gap p-value")
    min_speakers: int = Field(default=3, ge=1)
    seed: int = 0

    @field_validator("by")
    @classmethod
    def _known_groupings(cls, v: list[str]) -> list[str]:
        from emoshift.evaluation.audit import AuditError, parse_by

        try:
            return parse_by(v)
        except AuditError as e:
            raise ValueError(str(e)) from None


class ExperimentSpec(_Strict):
    """One phase of the study as written in the study file."""

    id: str
    title: str
    architecture: str = Field(..., description="for the key-results table, e.g. 'ResNet18'")
    data_strategy: str = Field(..., description="for the key-results table, e.g. 'RAVDESS only'")
    description: str = ""
    extends: str | None = Field(default=None, description="start from this experiment's overlay")
    config: dict[str, Any] = Field(default_factory=dict, description="overlay on the defaults")
    audit_of: str | None = Field(default=None, description="audit this experiment's run instead of training")
    audit: AuditSpec | None = Field(default=None, description="fairness audit of the run on every corpus")
    reported_accuracy: dict[str, float] = Field(
        default_factory=dict, description="the study's own reported accuracy (%) per corpus"
    )

    @field_validator("id")
    @classmethod
    def _safe_id(cls, v: str) -> str:
        if not _ID.match(v):
            raise ValueError(
                f"experiment id {v!r} must be letters, digits, '.', '_' or '-' (it names a folder)"
            )
        return v

    @field_validator("reported_accuracy")
    @classmethod
    def _percentages(cls, v: dict[str, float]) -> dict[str, float]:
        out = {_canonical_corpus(k): float(x) for k, x in v.items()}
        bad = {k: x for k, x in out.items() if not 0.0 <= x <= 100.0}
        if bad:
            raise ValueError(f"reported accuracy is a percentage (0-100), got {bad}")
        return out

    @model_validator(mode="after")
    def _audit_only(self) -> ExperimentSpec:
        if self.audit_of is not None and (self.config or self.extends):
            raise ValueError(
                f"experiment {self.id} audits {self.audit_of} and trains nothing: drop config/extends"
            )
        return self

    @property
    def trains(self) -> bool:
        return self.audit_of is None


class ProfileSpec(_Strict):
    description: str = ""
    defaults: dict[str, Any] = Field(default_factory=dict, description="overlay on the study defaults")
    experiments: dict[str, dict[str, Any]] = Field(default_factory=dict, description="id -> overlay")
    audit: dict[str, Any] = Field(default_factory=dict, description="overlay on every experiment's audit")


class StudyFile(_Strict):
    title: str = "study"
    description: str = ""
    defaults: dict[str, Any] = Field(default_factory=dict)
    profiles: dict[str, ProfileSpec] = Field(default_factory=dict)
    experiments: list[ExperimentSpec]

    @model_validator(mode="after")
    def _references(self) -> StudyFile:
        ids = [e.id for e in self.experiments]
        if not ids:
            raise ValueError("the study has no experiments")
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"experiment id(s) used twice: {', '.join(dupes)}")
        trained = {e.id for e in self.experiments if e.trains}
        for e in self.experiments:
            if e.extends is not None and e.extends not in trained:
                raise ValueError(
                    f"experiment {e.id} extends {e.extends!r}, which is not a training experiment here"
                )
            if e.audit_of is not None and e.audit_of not in trained:
                raise ValueError(
                    f"experiment {e.id} audits {e.audit_of!r}, which is not a training experiment here"
                )
        for name, profile in self.profiles.items():
            unknown = sorted(set(profile.experiments) - set(ids))
            if unknown:
                raise ValueError(f"profile {name!r} names unknown experiment(s) {', '.join(unknown)}")
        return self


# ---------------------------------------------------------------------------------------------------------
# The resolved study


class Experiment(BaseModel):
    """One experiment, resolved: its validated config (None when it trains nothing) and what it needs first."""

    model_config = ConfigDict(frozen=True)

    spec: ExperimentSpec
    config: ExperimentConfig | None
    audit: AuditSpec | None
    depends: tuple[str, ...] = ()
    teacher: str | None = Field(default=None, description="id of the distillation teacher experiment")
    notes: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def trains(self) -> bool:
        return self.config is not None

    @property
    def train_corpora(self) -> list[str]:
        return list(self.config.data.corpora) if self.config else []


class Study(BaseModel):
    """A study file resolved for one profile, corpus roots and overrides; experiments in run order."""

    model_config = ConfigDict(frozen=True)

    path: str
    title: str
    description: str
    profile: str | None
    profile_description: str = ""
    roots: dict[str, str]
    overrides: tuple[str, ...]
    experiments: tuple[Experiment, ...]
    only: tuple[str, ...] | None = None

    @property
    def ids(self) -> list[str]:
        return [e.id for e in self.experiments]

    def experiment(self, eid: str) -> Experiment:
        for e in self.experiments:
            if e.id == eid:
                return e
        raise StudyError(f"unknown experiment {eid!r}; this study has {', '.join(self.ids)}")

    def select(self, only: Sequence[str] | None = None) -> list[str]:
        """Ids to run, in run order: ``only`` (default: all) plus everything they depend on."""
        if not only:
            return self.ids
        unknown = [i for i in only if i not in self.ids]
        if unknown:
            raise StudyError(
                f"--only: unknown experiment {unknown[0]!r}; this study has {', '.join(self.ids)}"
            )
        wanted: set[str] = set()
        stack = list(only)
        while stack:
            eid = stack.pop()
            if eid not in wanted:
                wanted.add(eid)
                stack.extend(self.experiment(eid).depends)
        return [i for i in self.ids if i in wanted]

    def check_roots(self, ids: Sequence[str]) -> None:
        """Every corpus the selected experiments train on needs a root (--corpus NAME=ROOT)."""
        for eid in ids:
            for corpus in self.experiment(eid).train_corpora:
                if corpus not in self.roots:
                    raise StudyError(
                        f"experiment {eid} trains on {corpus} but no root was given: add --corpus {corpus}=/path/to/{corpus}"
                    )
        audited = [e for e in ids if self.experiment(e).audit is not None]
        if audited and not self.roots:
            raise StudyError(f"experiment {audited[0]} audits a run but no --corpus root was given")

    def run_config(self, eid: str, out: str | os.PathLike[str]) -> ExperimentConfig:
        """The config an experiment trains with in ``out``: its teacher (an experiment id) as a run directory."""
        exp = self.experiment(eid)
        if exp.config is None:
            raise StudyError(f"experiment {eid} trains nothing (it audits {exp.spec.audit_of})")
        if exp.teacher is None:
            return exp.config
        data = exp.config.to_dict()
        data["training"]["distill"]["teacher"] = os.fspath(run_dir(out, exp.teacher))
        return build_config(data)


def run_dir(out: str | os.PathLike[str], eid: str) -> Path:
    return Path(out) / "runs" / eid


# ---------------------------------------------------------------------------------------------------------
# Loading and resolving


def _split_overrides(overrides: Sequence[str], ids: Sequence[str]) -> tuple[list[str], dict[str, list[str]]]:
    """``key=value`` (every experiment) vs ``ID:key=value`` (one experiment)."""
    shared: list[str] = []
    scoped: dict[str, list[str]] = {}
    for item in overrides:
        key = item.partition("=")[0]
        if ":" in key:
            eid, _, rest = item.partition(":")
            if eid not in ids:
                raise StudyError(f"--set {item}: unknown experiment {eid!r}; this study has {', '.join(ids)}")
            parse_override(rest)  # checks the key=value form
            scoped.setdefault(eid, []).append(rest)
        else:
            parse_override(item)
            shared.append(item)
    return shared, scoped


def _sets(layer: dict[str, Any], *path: str) -> bool:
    node: Any = layer
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


def _override_sets(items: Sequence[str], *path: str) -> bool:
    return any(_sets(apply_overrides({}, [item]), *path) for item in items)


def fit_stages(stages: list[dict[str, Any]], epochs: int) -> list[dict[str, Any]]:
    """Fit a multi-stage schedule to ``epochs``: cut it after that many epochs, or lengthen its last stage."""
    out: list[dict[str, Any]] = []
    left = epochs
    for stage in stages:
        if left <= 0:
            break
        n = min(int(stage.get("epochs", 1)), left)
        out.append({**stage, "epochs": n})
        left -= n
    if left > 0 and out:
        out[-1] = {**out[-1], "epochs": out[-1]["epochs"] + left}
    return out


def _resolve_experiment(
    spec: ExperimentSpec,
    file: StudyFile,
    profile: ProfileSpec | None,
    roots: dict[str, str],
    shared: list[str],
    scoped: list[str],
) -> tuple[ExperimentConfig, list[str]]:
    by_id = {e.id: e for e in file.experiments}
    chain = [spec]
    while chain[-1].extends is not None:
        parent = by_id[chain[-1].extends]
        if parent in chain:
            raise StudyError(f"experiment {spec.id}: 'extends' loops ({' -> '.join(e.id for e in chain)})")
        chain.append(parent)
    layers: list[dict[str, Any]] = [file.defaults, profile.defaults if profile else {}]
    for e in reversed(chain):
        layers += [e.config, profile.experiments.get(e.id, {}) if profile else {}]

    data: dict[str, Any] = {}
    last_epochs = last_stages = -1
    for i, layer in enumerate(layers):
        data = merge(data, layer)
        last_epochs = i if _sets(layer, "training", "epochs") else last_epochs
        last_stages = i if _sets(layer, "training", "stages") else last_stages
    for i, items in enumerate((shared, scoped), start=len(layers)):
        try:
            data = apply_overrides(data, items)
        except ConfigError as e:
            raise StudyError(f"experiment {spec.id}: {e}") from None
        last_epochs = i if _override_sets(items, "training", "epochs") else last_epochs
        last_stages = i if _override_sets(items, "training", "stages") else last_stages

    notes: list[str] = []
    training = data.get("training") or {}
    stages, epochs = training.get("stages"), training.get("epochs")
    if stages and isinstance(epochs, int) and epochs >= 1 and last_epochs > last_stages:
        total = sum(int(s.get("epochs", 0)) for s in stages if isinstance(s, dict))
        if total != epochs and all(isinstance(s, dict) for s in stages):
            training["stages"] = fit_stages(stages, epochs)
            notes.append(f"training.stages fitted to training.epochs={epochs} (they lasted {total} epochs)")

    data["name"] = spec.id
    data.setdefault("data", {})
    corpora = data["data"].get("corpora") or ["ravdess"]
    try:
        wanted = [_canonical_corpus(c) for c in corpora]
    except ValueError as e:
        raise StudyError(f"experiment {spec.id}: data.corpora: {e}") from None
    data["data"]["roots"] = {c: roots[c] for c in wanted if c in roots}
    try:
        return build_config(data), notes
    except ConfigError as e:
        raise StudyError(f"experiment {spec.id}: {e}") from None


def _order(experiments: list[Experiment]) -> list[Experiment]:
    """Stable topological order: file order, each experiment after what it depends on."""
    by_id = {e.id: e for e in experiments}
    done: list[Experiment] = []
    placed: set[str] = set()

    def place(e: Experiment, path: tuple[str, ...]) -> None:
        if e.id in placed:
            return
        if e.id in path:
            raise StudyError(f"experiments depend on each other in a loop: {' -> '.join((*path, e.id))}")
        for d in e.depends:
            place(by_id[d], (*path, e.id))
        placed.add(e.id)
        done.append(e)

    for e in experiments:
        place(e, ())
    return done


def load_study(
    path: str | os.PathLike[str],
    *,
    profile: str | None = None,
    roots: dict[str, str] | None = None,
    overrides: Sequence[str] | None = None,
    only: Sequence[str] | None = None,
) -> Study:
    """Read and resolve a study file; every problem is a one-line :class:`StudyError`.

    ``roots`` maps corpus names (aliases accepted) to existing folders; ``overrides`` are ``--set`` items,
    ``key=value`` for every experiment or ``ID:key=value`` for one. ``only`` (optional) is checked here and
    limits the corpus-root check to those experiments and their dependencies.
    """
    try:
        raw = read_yaml(path)
    except ConfigError as e:
        raise StudyError(str(e)) from None
    try:
        file = StudyFile.model_validate(raw)
    except ValidationError as e:
        raise StudyError(f"{path}: {explain(e, StudyFile)}") from None

    profile_spec: ProfileSpec | None = None
    if profile is not None:
        if profile not in file.profiles:
            available = ", ".join(file.profiles) or "none"
            raise StudyError(f"unknown profile {profile!r}; {path} has: {available}")
        profile_spec = file.profiles[profile]

    canonical_roots: dict[str, str] = {}
    for name, root in (roots or {}).items():
        try:
            corpus = _canonical_corpus(name)
        except ValueError as e:
            raise StudyError(f"--corpus {name}={root}: {e}") from None
        if not Path(root).is_dir():
            raise StudyError(f"--corpus {name}={root}: folder not found")
        canonical_roots[corpus] = os.fspath(root)

    ids = [e.id for e in file.experiments]
    shared, scoped = _split_overrides(list(overrides or []), ids)
    experiments: list[Experiment] = []
    for spec in file.experiments:
        audit = spec.audit
        if audit is not None and profile_spec is not None and profile_spec.audit:
            try:
                audit = AuditSpec.model_validate(merge(audit.model_dump(), profile_spec.audit))
            except ValidationError as e:
                raise StudyError(f"profile {profile} audit: {explain(e, AuditSpec)}") from None
        if not spec.trains:
            if spec.id in scoped:
                raise StudyError(
                    f"--set {spec.id}:...: experiment {spec.id} trains nothing (it audits {spec.audit_of})"
                )
            experiments.append(Experiment(spec=spec, config=None, audit=audit, depends=(str(spec.audit_of),)))
            continue
        cfg, notes = _resolve_experiment(
            spec, file, profile_spec, canonical_roots, shared, scoped.get(spec.id, [])
        )
        depends: list[str] = []
        teacher = None
        if cfg.training.distill is not None:
            ref = cfg.training.distill.teacher
            if ref in ids:
                if not file.experiments[ids.index(ref)].trains:
                    raise StudyError(f"experiment {spec.id}: teacher {ref} trains nothing")
                teacher = ref
                depends.append(ref)
            elif not Path(ref).is_dir():
                raise StudyError(
                    f"experiment {spec.id}: training.distill.teacher {ref!r} is neither an experiment id of this "
                    "study nor an existing run directory"
                )
        experiments.append(
            Experiment(
                spec=spec,
                config=cfg,
                audit=audit,
                depends=tuple(depends),
                teacher=teacher,
                notes=tuple(notes),
            )
        )

    study = Study(
        path=os.fspath(path),
        title=file.title,
        description=file.description,
        profile=profile,
        profile_description=profile_spec.description if profile_spec else "",
        roots=canonical_roots,
        overrides=tuple(overrides or ()),
        experiments=tuple(_order(experiments)),
        only=tuple(only) if only else None,
    )
    study.check_roots(study.select(only))
    return study


# ---------------------------------------------------------------------------------------------------------
# Running


Status = Literal["trained", "resumed", "retrained", "skipped", "updated", "audited", "failed"]


@dataclass
class Outcome:
    """What happened to one experiment in this invocation."""

    id: str
    status: Status
    run_dir: Path
    seconds: float = 0.0
    error: str | None = None
    detail: str = ""


@dataclass
class StudyResult:
    out: Path
    selected: list[str]
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(o.status != "failed" for o in self.outcomes.values())

    @property
    def failed(self) -> list[str]:
        return [i for i, o in self.outcomes.items() if o.status == "failed"]


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _finished(done: dict[str, Any] | None) -> float | None:
    """done.json's finish time as a timestamp (None when absent or unreadable)."""
    try:
        return datetime.fromisoformat(str((done or {})["finished"])).timestamp()
    except (KeyError, ValueError):
        return None


def _move_aside(out: Path, run: Path, eid: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    target = out / "stale" / f"{eid}-{stamp}"
    n = 1
    while target.exists():
        n += 1
        target = out / "stale" / f"{eid}-{stamp}-{n}"
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(run, target)
    return target


def _same_run_config(run: Path, cfg: ExperimentConfig, done_fingerprint: str | None) -> bool:
    """Whether the finished run in ``run`` was trained with ``cfg``.

    The fingerprints must match, except for a distillation teacher of this study: it counts by experiment id
    (``.../runs/<id>``), not by absolute path, so a copied or moved output folder is still recognised.
    """
    from emoshift.config import load_config

    fingerprint = cfg.fingerprint(exclude_roots=True)
    if done_fingerprint == fingerprint:
        return True
    if cfg.training.distill is None:
        return False
    try:
        old = load_config(run / "config.yaml")
    except ConfigError:
        return False
    if old.training.distill is None or old.fingerprint(exclude_roots=True) != done_fingerprint:
        return False
    old_teacher, new_teacher = Path(old.training.distill.teacher), Path(cfg.training.distill.teacher)
    if (old_teacher.name, old_teacher.parent.name) != (new_teacher.name, "runs"):
        return False
    data = old.to_dict()
    data["training"]["distill"]["teacher"] = cfg.training.distill.teacher
    return build_config(data).fingerprint(exclude_roots=True) == fingerprint


def _training_state(run: Path, cfg: ExperimentConfig, after: float | None) -> tuple[str, str]:
    """("complete" | "resume" | "stale" | "new", why) for a training run directory."""
    from emoshift.config import load_config

    done = _read_json(run / "done.json")
    if done is not None:
        if not _same_run_config(run, cfg, done.get("fingerprint")):
            return "stale", "its config changed"
        finished = _finished(done)
        if after is not None and (finished is None or finished < after):
            return "stale", "its distillation teacher was retrained since"
        return "complete", ""
    if not run.is_dir() or not any(run.iterdir()):
        return "new", ""
    try:
        old = load_config(run / "config.yaml").fingerprint(exclude_roots=True)
    except ConfigError:
        return "stale", "it holds an unreadable or missing config.yaml"
    return ("resume", "") if old == cfg.fingerprint(exclude_roots=True) else ("stale", "its config changed")


class _Progress:
    """Prints which experiment runs, index/total, elapsed time and an ETA from the experiments run so far."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled = enabled
        self.total = total
        self.started = time.monotonic()
        self.worked: list[float] = []  # seconds of experiments that did work
        self._console: Any = None

    def _print(self, text: str) -> None:
        if not self.enabled:
            return
        if self._console is None:
            from rich.console import Console

            self._console = Console()
        self._console.print(text, highlight=False, soft_wrap=True)

    @staticmethod
    def _plain(text: str) -> str:
        """Escape rich markup in text that comes from elsewhere (titles, paths, error messages)."""
        from rich.markup import escape

        return escape(text)

    @staticmethod
    def clock(seconds: float) -> str:
        s = int(round(seconds))
        return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"

    def start(self, k: int, exp: Experiment, remaining: int) -> None:
        elapsed = time.monotonic() - self.started
        if remaining == 0:
            eta = "0:00"
        else:
            eta = self.clock(sum(self.worked) / len(self.worked) * remaining) if self.worked else "?"
        self._print(
            f"[bold cyan]\\[{k}/{self.total}] {exp.id}[/] {self._plain(exp.spec.title)} "
            f"[dim](elapsed {self.clock(elapsed)}, ETA {eta})[/]"
        )

    def note(self, text: str) -> None:
        self._print(f"  {self._plain(text)}")

    def finish(self, outcome: Outcome) -> None:
        if outcome.status not in ("skipped", "failed"):
            self.worked.append(outcome.seconds)
        colour = {"failed": "red", "skipped": "dim"}.get(outcome.status, "green")
        detail = f": {outcome.error}" if outcome.error else (f" ({outcome.detail})" if outcome.detail else "")
        detail = self._plain(detail)
        self._print(f"  [{colour}]{outcome.id} {outcome.status}[/] in {self.clock(outcome.seconds)}{detail}")


def _missing(names: Sequence[str], folder: Path, suffix: str = ".json") -> list[str]:
    return [c for c in names if not (folder / f"{c}{suffix}").is_file()]


def _run_training(study: Study, exp: Experiment, out: Path, progress: bool, log: _Progress) -> Outcome:
    from emoshift.evaluation.evaluate import evaluate_run
    from emoshift.training.train import train

    run = run_dir(out, exp.id)
    cfg = study.run_config(exp.id, out)
    after = _finished(_read_json(run_dir(out, exp.teacher) / "done.json")) if exp.teacher else None
    state, why = _training_state(run, cfg, after)
    for note in exp.notes:
        log.note(note)
    status: Status = "skipped"
    if state == "stale":
        moved = _move_aside(out, run, exp.id)
        log.note(f"{run} is stale ({why}): moved to {moved}; training afresh")
        status = "retrained"
    elif state == "complete":
        log.note(f"complete with the same config: {run}")
    elif state == "resume":
        log.note(f"resuming the interrupted run in {run}")
        status = "resumed"
    else:
        status = "trained"
    if state != "complete":
        train(cfg, run, progress=progress)

    did: list[str] = []
    todo = _missing(list(study.roots), run / "metrics")
    if todo:
        evaluate_run(run, {c: study.roots[c] for c in todo}, progress=progress)
        did.append(f"evaluated on {', '.join(todo)}")
    if exp.audit is not None:
        todo = _missing(list(study.roots), run / "audit")
        for corpus in todo:
            from emoshift.evaluation.audit import audit_run

            audit_run(run, corpus, study.roots[corpus], **exp.audit.model_dump())
        if todo:
            did.append(f"audited on {', '.join(todo)}")
    if status == "skipped" and did:
        status = "updated"
    return Outcome(exp.id, status, run, detail="; ".join(did))


def _audit_fingerprint(audit: AuditSpec, source_done: dict[str, Any]) -> str:
    blob = json.dumps(
        {
            "audit": audit.model_dump(mode="json"),
            "run": source_done.get("fingerprint"),
            "at": source_done.get("finished"),
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _run_audit_only(study: Study, exp: Experiment, out: Path, log: _Progress) -> Outcome:
    """Audit another experiment's run (trains nothing); the audit files are copied to OUT/runs/<id>/audit/."""
    from emoshift.evaluation.audit import audit_run

    audit = exp.audit or AuditSpec()
    source_id = str(exp.spec.audit_of)
    source = run_dir(out, source_id)
    source_done = _read_json(source / "done.json")
    if source_done is None:
        raise RuntimeError(f"{source_id} has no complete run in {source} to audit")
    run = run_dir(out, exp.id)
    fingerprint = _audit_fingerprint(audit, source_done)
    done = _read_json(run / "done.json")
    if run.is_dir() and (done is None or done.get("fingerprint") != fingerprint):
        moved = _move_aside(out, run, exp.id)
        log.note(f"{run} is stale (the audited run or the audit settings changed): moved to {moved}")
        done = None
    todo = _missing(list(study.roots), run / "audit")
    if done is not None and not todo:
        log.note(f"complete with the same settings: {run}")
        return Outcome(exp.id, "skipped", run)

    started = time.monotonic()
    for corpus in todo:
        report = audit_run(source, corpus, study.roots[corpus], **audit.model_dump())
        # the corpus's audit files (json, md, plots) are copied into this experiment's own folder
        for f in sorted(report.parent.glob(f"{report.stem}*")):
            if f.is_file() and (f.name == report.name or f.suffix in (".md", ".png")):
                atomic_write_bytes(run / "audit" / f.name, f.read_bytes())
    atomic_write_json(
        run / "done.json",
        {
            "fingerprint": fingerprint,
            "kind": "audit",
            "audits": source_id,
            "run": os.fspath(source),
            "seconds": round(float((done or {}).get("seconds", 0.0)) + time.monotonic() - started, 2),
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )
    status: Status = "updated" if done is not None else "audited"
    return Outcome(exp.id, status, run, detail=f"audited on {', '.join(todo)}")


def _looks_complete(study: Study, exp: Experiment, out: Path) -> bool:
    """A cheap guess (for the ETA) whether an experiment will be skipped."""
    run = run_dir(out, exp.id)
    done = _read_json(run / "done.json")
    if done is None or _missing(list(study.roots), run / ("metrics" if exp.trains else "audit")):
        return False
    if exp.trains:
        return _same_run_config(run, study.run_config(exp.id, out), done.get("fingerprint"))
    return True


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return (
        text
        if isinstance(e, ConfigError | ValueError | RuntimeError | OSError)
        else f"{type(e).__name__}: {text}"
    )


def run_study(
    study: Study, out: str | os.PathLike[str], *, only: Sequence[str] | None = None, progress: bool = True
) -> StudyResult:
    """Run the selected experiments (``only`` plus their dependencies; default all) into ``out/runs/<id>/``.

    A failing experiment is recorded (its traceback in ``out/errors/<id>.txt``) and the others go on;
    experiments that depend on it are marked failed too. Call :func:`write_report` afterwards.
    """
    out = Path(out)
    selected = study.select(only if only else study.only)
    study.check_roots(selected)
    out.mkdir(parents=True, exist_ok=True)
    result = StudyResult(out=out, selected=selected)
    log = _Progress(progress, len(selected))
    pending = {eid for eid in selected if not _looks_complete(study, study.experiment(eid), out)}
    for k, eid in enumerate(selected, start=1):
        exp = study.experiment(eid)
        broken = [d for d in exp.depends if d in result.failed]
        if broken:
            outcome = Outcome(eid, "failed", run_dir(out, eid), error=f"not run: {broken[0]} failed")
            result.outcomes[eid] = outcome
            log.start(k, exp, 0)
            log.finish(outcome)
            continue
        log.start(k, exp, len(pending.intersection(selected[k - 1 :])))
        started = time.monotonic()
        try:
            if exp.trains:
                outcome = _run_training(study, exp, out, progress, log)
            else:
                outcome = _run_audit_only(study, exp, out, log)
        except Exception as e:  # one experiment failing must not lose the others
            outcome = Outcome(eid, "failed", run_dir(out, eid), error=_one_line(e))
            atomic_write_text(out / "errors" / f"{eid}.txt", traceback.format_exc())
        else:
            (out / "errors" / f"{eid}.txt").unlink(missing_ok=True)
        outcome.seconds = time.monotonic() - started
        result.outcomes[eid] = outcome
        log.finish(outcome)
    result.seconds = time.monotonic() - log.started
    return result


def write_report(
    out: str | os.PathLike[str], study: Study, results: StudyResult | None = None
) -> dict[str, Path]:
    """Write OUT/report.md, OUT/report.html and OUT/results.csv from the runs in ``out`` (see emoshift.study.report)."""
    from emoshift.study.report import write_report as _write

    return _write(out, study, results)
