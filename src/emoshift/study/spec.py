"""The study's spec: the phases of the original research study as named, re-runnable experiments.

``configs/study.yaml`` holds

- ``defaults``: an overlay on :class:`~emoshift.config.ExperimentConfig` shared by every experiment;
- ``profiles``: named overlays (``demo``, ``paper``) on the defaults and, optionally, per experiment;
- ``experiments``: one entry per phase, each a small overlay (``config``) with display metadata (title,
  architecture, data strategy, the study's own reported accuracy). ``extends: L4.5`` starts from another
  experiment's overlay; ``audit_of: L2`` makes an experiment that trains nothing and audits another one's run;
  ``adapt_of: L2`` with ``adapt: {method, corpus, ...}`` makes one that adapts another one's finished run to a
  corpus instead of training, as ``emoshift adapt`` does (:mod:`emoshift.study.adapting`).

An experiment's config is resolved in this order (later wins)::

    defaults -> profile.defaults -> for each experiment in the extends chain, root first:
    (its config -> profile.experiments[its id]) -> --set key=value -> --set ID:key=value

An experiment of a dimensional task (``task: dimensional``) is refused when the study is loaded, in one line:
the study's report, claims and audits compare emotion classes (UAR), not ratings.

A distillation teacher given as an experiment id (``training.distill.teacher: L2b``) becomes the run directory
``OUT/runs/L2b`` and that experiment runs first. When a later layer changes ``training.epochs`` of an
experiment with multi-stage fine-tuning (``training.stages``, set by an earlier layer), the stages are fitted
to the new total: the schedule is cut after that many epochs, or its last stage is lengthened.

:func:`load_study` validates all of it up front (one-line :class:`StudyError` messages) and returns a
:class:`Study`; :func:`emoshift.study.runner.run_study` trains, evaluates and audits into ``OUT/runs/<id>/``;
:func:`emoshift.study.report.write_report` writes ``OUT/report.md``, ``OUT/report.html`` and ``OUT/results.csv``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from emoshift.config import (
    ConfigError,
    ExperimentConfig,
    build_config,
    explain,
    merge,
    parse_override,
    read_yaml,
)
from emoshift.data.channel import canonical_specs
from emoshift.models import CONFIG_CHECKS
from emoshift.study.adapting import AdaptSpec
from emoshift.study.domain_shift import MatrixPlan, expand, is_generated
from emoshift.study.findings import FindingsSpec
from emoshift.study.overlays import fit_stages_to_epochs, merge_layers
from emoshift.study.records import run_dir

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
    adapt_of: str | None = Field(default=None, description="adapt this experiment's finished run instead of training")
    adapt: AdaptSpec | None = Field(default=None, description="how adapt_of's run is adapted, and to which corpus")
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
        if (self.adapt_of is None) != (self.adapt is None):
            raise ValueError(f"experiment {self.id}: adapt_of (the run to adapt) and adapt (how) go together")
        if self.adapt_of is not None and (self.config or self.extends or self.audit_of):
            raise ValueError(
                f"experiment {self.id} adapts {self.adapt_of}'s run and trains nothing: drop config/extends/audit_of"
            )
        return self

    @property
    def trains(self) -> bool:
        """Whether it trains a model of its own (not an audit of another run, not an adaptation of one)."""
        return self.audit_of is None and self.adapt_of is None


Specs = Annotated[list[str], pydantic.AfterValidator(lambda v: canonical_specs(v, "robustness"))]  # one line if bad


class ProfileSpec(_Strict):
    description: str = ""
    defaults: dict[str, Any] = Field(default_factory=dict, description="overlay on the study defaults")
    experiments: dict[str, dict[str, Any]] = Field(default_factory=dict, description="id -> overlay")
    audit: dict[str, Any] = Field(default_factory=dict, description="overlay on every experiment's audit")
    robustness: Specs | None = Field(None, description="in place of the file's robustness list ([]: none)")


class StudyFile(_Strict):
    title: str = "study"
    description: str = ""
    defaults: dict[str, Any] = Field(default_factory=dict)
    profiles: dict[str, ProfileSpec] = Field(default_factory=dict)
    experiments: list[ExperimentSpec]
    findings: FindingsSpec = Field(default_factory=FindingsSpec, description="the claims tested in the report")
    robustness: Specs = Field(default_factory=list, description="evaluate --perturb SPECs each trained run "
                              "is also scored through on every corpus (the report's robustness table)")

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
            if e.adapt_of is not None and e.adapt_of not in trained:
                raise ValueError(
                    f"experiment {e.id} adapts {e.adapt_of!r}, which is not a training experiment here"
                )
        for name, profile in self.profiles.items():
            unknown = sorted(set(profile.experiments) - set(ids))
            if unknown:
                raise ValueError(f"profile {name!r} names unknown experiment(s) {', '.join(unknown)}")
        scored = trained | {e.id for e in self.experiments if e.adapt_of is not None}  # each has its predictions
        self.findings.check_references(sorted(scored))
        return self


# ---------------------------------------------------------------------------------------------------------
# The resolved study


class Experiment(BaseModel):
    """One experiment, resolved: its validated config (None when it trains nothing) and what it needs first."""

    model_config = ConfigDict(frozen=True)

    spec: ExperimentSpec
    config: ExperimentConfig | None  # an adaptation's: its source's (what the adapted models were trained with)
    audit: AuditSpec | None
    depends: tuple[str, ...] = ()
    teacher: str | None = Field(default=None, description="id of the distillation teacher experiment")
    notes: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def trains(self) -> bool:
        """Whether it has a model run of its own (trained, or adapted from another experiment's run)."""
        return self.config is not None

    @property
    def adapt(self) -> AdaptSpec | None:
        """The adaptation step when it adapts another experiment's run instead of training."""
        return self.spec.adapt

    @property
    def train_corpora(self) -> list[str]:
        """What its model heard labels of: the config's corpora (few-shot: and the target's K speakers)."""
        few_shot = [self.adapt.corpus] if self.adapt is not None and self.adapt.few_shot else []
        return [*self.config.data.corpora, *few_shot] if self.config else []


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
    matrix: MatrixPlan | None = Field(default=None, description="an N-corpus study's matrix (cross_corpus:)")
    findings: FindingsSpec = Field(default_factory=FindingsSpec)
    robustness: tuple[str, ...] = Field(default=(), description="channel effects each trained run is scored through")

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
            adapt = self.experiment(eid).adapt
            if adapt is not None and adapt.corpus not in self.roots:
                raise StudyError(
                    f"experiment {eid} adapts to {adapt.corpus} but no root was given: add --corpus "
                    f"{adapt.corpus}=/path/to/{adapt.corpus}"
                )
        audited = [e for e in ids if self.experiment(e).audit is not None]
        if audited and not self.roots:
            raise StudyError(f"experiment {audited[0]} audits a run but no --corpus root was given")

    def run_config(self, eid: str, out: str | os.PathLike[str]) -> ExperimentConfig:
        """The config an experiment trains with in ``out``: its teacher (an experiment id) as a run directory."""
        exp = self.experiment(eid)
        if exp.config is None:
            raise StudyError(f"experiment {eid} trains nothing (it audits {exp.spec.audit_of})")
        if exp.adapt is not None:
            raise StudyError(f"experiment {eid} trains nothing (it adapts {exp.spec.adapt_of}'s run)")
        if exp.teacher is None:
            return exp.config
        data = exp.config.to_dict()
        data["training"]["distill"]["teacher"] = os.fspath(run_dir(out, exp.teacher))
        return build_config(data, checks=CONFIG_CHECKS)


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


def _extends_chain(spec: ExperimentSpec, file: StudyFile) -> list[ExperimentSpec]:
    """``spec`` and the experiments it extends, nearest first."""
    by_id = {e.id: e for e in file.experiments}
    chain = [spec]
    while chain[-1].extends is not None:
        parent = by_id[chain[-1].extends]
        if parent in chain:
            raise StudyError(f"experiment {spec.id}: 'extends' loops ({' -> '.join(e.id for e in chain)})")
        chain.append(parent)
    return chain


def _layers(spec: ExperimentSpec, file: StudyFile, profile: ProfileSpec | None) -> list[dict[str, Any]]:
    """The overlays, first to last: defaults, profile defaults, then per experiment of the chain (root first)."""
    layers: list[dict[str, Any]] = [file.defaults, profile.defaults if profile else {}]
    for e in reversed(_extends_chain(spec, file)):
        layers += [e.config, profile.experiments.get(e.id, {}) if profile else {}]
    return layers


def _resolve_experiment(
    spec: ExperimentSpec,
    file: StudyFile,
    profile: ProfileSpec | None,
    roots: dict[str, str],
    shared: list[str],
    scoped: list[str],
) -> tuple[ExperimentConfig, list[str]]:
    """The validated config of a training experiment, and notes on what was adjusted."""
    try:
        data, epochs_last = merge_layers(spec.id, _layers(spec, file, profile), (shared, scoped))
    except ConfigError as e:
        raise StudyError(str(e)) from None
    notes = fit_stages_to_epochs(data) if epochs_last else []
    data["name"] = spec.id
    section = data.setdefault("data", {})
    corpora = (section.get("corpora") or ["ravdess"]) if isinstance(section, dict) else []
    if isinstance(section, dict) and isinstance(corpora, list) and all(isinstance(c, str) for c in corpora):
        try:
            wanted = [c if c in roots else _canonical_corpus(c) for c in corpora]  # else build_config names it
        except ValueError as e:
            raise StudyError(f"experiment {spec.id}: data.corpora: {e}") from None
        section["roots"] = {c: roots[c] for c in wanted if c in roots}
    try:
        return build_config(data, checks=CONFIG_CHECKS), notes
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


def _read_study_file(
    path: str | os.PathLike[str],
    roots: dict[str, str],
    profile: str | None,
    overrides: Sequence[str],
) -> tuple[StudyFile, MatrixPlan | None]:
    """The study file validated; a cross_corpus: or domain_shift: one gets its experiments from ``roots``."""
    try:
        raw = read_yaml(path)
    except ConfigError as e:
        raise StudyError(str(e)) from None
    matrix = None
    if is_generated(raw):  # cross_corpus: or domain_shift:
        try:
            raw, matrix = expand(raw, roots, profile=profile, overrides=overrides)
        except ConfigError as e:
            raise StudyError(f"{path}: {e}") from None
    try:
        return StudyFile.model_validate(raw), matrix
    except ValidationError as e:
        raise StudyError(f"{path}: {explain(e, StudyFile)}") from None


def _profile_spec(file: StudyFile, profile: str | None, path: str | os.PathLike[str]) -> ProfileSpec | None:
    if profile is None:
        return None
    if profile not in file.profiles:
        available = ", ".join(file.profiles) or "none"
        raise StudyError(f"unknown profile {profile!r}; {path} has: {available}")
    return file.profiles[profile]


def _canonical_roots(roots: dict[str, str] | None) -> dict[str, str]:
    """``--corpus NAME=ROOT`` items by canonical corpus name; every root must be an existing folder."""
    from emoshift.corpora import CorpusError, resolve_name, source_of

    out: dict[str, str] = {}
    for name, root in (roots or {}).items():
        try:  # a name outside the registry is a corpus of your own (a table, hf:, lhotse:, audformat:)
            corpus = resolve_name(name, root)
            missing = source_of(root).missing()
        except (KeyError, CorpusError) as e:
            raise StudyError(f"--corpus {name}={root}: {str(e).strip(chr(34) + chr(39))}") from None
        if missing:
            raise StudyError(f"--corpus {name}={root}: {missing}")
        out[corpus] = os.fspath(root)
    return out


def _audit(spec: ExperimentSpec, profile: str | None, profile_spec: ProfileSpec | None) -> AuditSpec | None:
    """The experiment's audit settings with the profile's audit overlay."""
    if spec.audit is None or profile_spec is None or not profile_spec.audit:
        return spec.audit
    try:
        return AuditSpec.model_validate(merge(spec.audit.model_dump(), profile_spec.audit))
    except ValidationError as e:
        raise StudyError(f"profile {profile} audit: {explain(e, AuditSpec)}") from None


def _teacher(spec: ExperimentSpec, cfg: ExperimentConfig, file: StudyFile) -> str | None:
    """The distillation teacher when it is an experiment of this study (else an existing run directory)."""
    if cfg.training.distill is None:
        return None
    ref = cfg.training.distill.teacher
    by_id = {e.id: e for e in file.experiments}
    if ref in by_id:
        if not by_id[ref].trains:
            raise StudyError(f"experiment {spec.id}: teacher {ref} trains nothing")
        return ref
    if not Path(ref).is_dir():
        raise StudyError(
            f"experiment {spec.id}: training.distill.teacher {ref!r} is neither an experiment id of this "
            "study nor an existing run directory"
        )
    return None


@dataclass(frozen=True)
class _Context:
    """What every experiment of one load_study call is resolved against."""

    file: StudyFile
    profile: str | None
    profile_spec: ProfileSpec | None
    roots: dict[str, str]
    shared: list[str]
    scoped: dict[str, list[str]]


def _experiment(spec: ExperimentSpec, ctx: _Context) -> Experiment:
    audit = _audit(spec, ctx.profile, ctx.profile_spec)
    if spec.adapt_of is not None:
        return _adaptation(spec, audit, ctx)
    if not spec.trains:
        if spec.id in ctx.scoped:
            raise StudyError(
                f"--set {spec.id}:...: experiment {spec.id} trains nothing (it audits {spec.audit_of})"
            )
        return Experiment(spec=spec, config=None, audit=audit, depends=(str(spec.audit_of),))
    cfg, notes = _resolve_experiment(
        spec, ctx.file, ctx.profile_spec, ctx.roots, ctx.shared, ctx.scoped.get(spec.id, [])
    )
    if cfg.task_kind.rated:  # refused up front: the report, the claims and the audits compare classes
        raise StudyError(
            f"experiment {spec.id}: task: {cfg.task} is not supported in a study (its report compares UAR over "
            "emotion classes); train and evaluate it with `emoshift train`"
        )
    teacher = _teacher(spec, cfg, ctx.file)
    return Experiment(
        spec=spec,
        config=cfg,
        audit=audit,
        depends=(teacher,) if teacher else (),
        teacher=teacher,
        notes=tuple(notes),
    )


def _adaptation(spec: ExperimentSpec, audit: AuditSpec | None, ctx: _Context) -> Experiment:
    """An experiment that adapts another's run: its config is the source's, its target one of the corpora."""
    assert spec.adapt is not None and spec.adapt_of is not None
    if spec.id in ctx.scoped:
        raise StudyError(f"--set {spec.id}:...: experiment {spec.id} trains nothing (it adapts {spec.adapt_of}'s run)")
    source = next(e for e in ctx.file.experiments if e.id == spec.adapt_of)
    cfg, _ = _resolve_experiment(
        source, ctx.file, ctx.profile_spec, ctx.roots, ctx.shared, ctx.scoped.get(source.id, [])
    )
    target = spec.adapt.corpus
    if target in cfg.data.corpora:
        raise StudyError(f"experiment {spec.id}: {spec.adapt_of} trained on {target}: adapt it to another corpus")
    if cfg.task_kind.rated:
        raise StudyError(f"experiment {spec.id}: a study adapts categorical runs only")
    return Experiment(spec=spec, config=cfg, audit=audit, depends=(str(spec.adapt_of),))


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
    canonical_roots = _canonical_roots(roots)
    file, matrix = _read_study_file(path, canonical_roots, profile, list(overrides or []))
    profile_spec = _profile_spec(file, profile, path)
    shared, scoped = _split_overrides(list(overrides or []), [e.id for e in file.experiments])
    ctx = _Context(file, profile, profile_spec, canonical_roots, shared, scoped)
    experiments = [_experiment(spec, ctx) for spec in file.experiments]
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
        matrix=matrix,
        findings=file.findings,
        robustness=tuple(file.robustness if profile_spec is None or profile_spec.robustness is None
                         else profile_spec.robustness),
    )
    study.check_roots(study.select(only))
    return study
