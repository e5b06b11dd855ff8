"""A leave-one-corpus-out benchmark of the levers that close the domain gap: its experiments generated from the
``--corpus`` list (``configs/domain_shift.yaml``).

A study file with a ``domain_shift:`` section lists no experiments; for the corpora of ``--corpus NAME=ROOT``
(3 to 10) and each model family of ``families`` (an overlay each: the acoustic baseline, the CNN, ...)
:func:`expand` writes

- ``<family>.<method>.<corpus>``: trained on every corpus but ``<corpus>``, once per method of ``methods``
  (an overlay each: ``pooled``, the reference, is plain pooled training; the others are its levers), the
  held-out corpus (every corpus in turn, or those of ``held_out``) scored on every utterance and never
  trained on;
- ``<family>.in-domain.<corpus>``: trained on ``<corpus>`` alone with the ``in_domain`` overlay (speaker
  k-fold by default: every speaker scored once by a model that never heard them), the ceiling a lever is
  measured against;

and one ``better`` claim per lever, family and held-out corpus (the lever against ``pooled`` on that corpus) in
the study's ``findings:``, so the paired differences over speakers and seeds, their intervals and the verdicts
(Holm's correction across them) are the Findings machinery's (:mod:`emoshift.study.claims`). A method names
the families it applies to (``families:``; default all: AdaBN needs batch norm, DANN a neural model) and, for
DANN, ``unlabelled: held_out`` puts the held-out corpus's audio in ``data.unlabelled`` (its labels are never
read). A method with ``adapts: {method: adabn}`` (or ``corpus-norm``, or ``few-shot`` with ``labelled_speakers:
K``) trains nothing: its experiment adapts the reference's finished run to the held-out corpus, every seed, as
``emoshift adapt`` does (:mod:`emoshift.study.adapting`); few-shot is scored on the held-out corpus's other
speakers, and its finding pairs it with the reference on those. A lever is added to the benchmark by one entry
under ``methods``.

Labels follow the N-corpus study's policy (:mod:`emoshift.study.cross_corpus`: the widest of six / four that
every corpus holds). The returned :class:`ShiftPlan` is a :class:`~emoshift.study.cross_corpus.MatrixPlan`
whose rows are the first family's in-domain and pooled runs (the report's cross-corpus matrix; none when only
some corpora are held out) and whose
``cells`` say which run is which; :mod:`emoshift.study.gap` writes the report's "What closes the gap" section
and ``OUT/domain_shift.csv`` from them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from emoshift.config import explain, merge
from emoshift.study.adapting import AdaptMethod
from emoshift.study.cross_corpus import (
    MAX_CORPORA,
    CrossCorpusError,
    CrossCorpusSpec,
    MatrixPlan,
    MatrixRow,
    is_cross_corpus,
    shared_labels,
)
from emoshift.study.cross_corpus import expand as expand_matrix

MIN_CORPORA = 3  # a held-out corpus and at least two to pool
IN_DOMAIN = "in-domain"  # the method name of the ceiling runs


class MethodSpec(BaseModel):
    """One lever (or the reference) as written under ``domain_shift.methods``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str = Field("", description="for the report, e.g. 'corpus normalisation'")
    assumes: str = Field("nothing", description="what it needs of the target corpus, for the report")
    config: dict[str, Any] = Field(default_factory=dict, description="overlay on the pooled experiment")
    families: list[str] | None = Field(None, description="the families it applies to (default: all)")
    unlabelled: Literal["held_out"] | None = Field(
        None, description="held_out: data.unlabelled gets the held-out corpus's root (its audio, never its labels)"
    )
    adapts: AdaptMethod | None = Field(
        None, description="the reference's finished run adapted to the held-out corpus (emoshift adapt), not trained"
    )

    @model_validator(mode="after")
    def _adapts_alone(self) -> MethodSpec:
        if self.adapts is not None and (self.config or self.unlabelled):
            raise ValueError("a method that adapts the reference's run trains nothing: drop config/unlabelled")
        return self


class DomainShiftSpec(BaseModel):
    """The ``domain_shift:`` section of a study file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    labels: Literal["auto", "six", "four", "calm-as-neutral", "native"] = "auto"
    min_class_share: float = Field(0.02, ge=0.0, lt=1.0)
    families: dict[str, dict[str, Any]] = Field(..., description="family name -> overlay (model.name, ...)")
    reference: str = Field("pooled", description="the method every lever is compared with")
    methods: dict[str, MethodSpec] = Field(..., description="method name -> lever (the reference included)")
    in_domain: dict[str, Any] = Field(default_factory=dict, description="overlay of the in-domain ceiling runs")
    held_out: list[str] | None = Field(
        None, description="the corpora held out in turn (default: every --corpus); the others are only pooled"
    )

    @field_validator("families", "methods")
    @classmethod
    def _names(cls, v: dict[str, Any]) -> dict[str, Any]:
        bad = [k for k in v if not k or not all(ch.isalnum() or ch in "-_" for ch in k) or k == IN_DOMAIN]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a usable name (letters, digits, - and _; not {IN_DOMAIN!r})")
        if not v:
            raise ValueError("name at least one")
        return v

    @field_validator("held_out")
    @classmethod
    def _canonical(cls, v: list[str] | None) -> list[str] | None:
        """Registered corpora by their canonical names (``CREMA-D`` is ``crema-d``); others as written."""
        from emoshift.corpora import canonical_name

        def name(c: str) -> str:
            try:
                return canonical_name(c)
            except KeyError:
                return c

        return None if v is None else [name(c) for c in v]

    @model_validator(mode="after")
    def _reference_and_families(self) -> DomainShiftSpec:
        if self.reference not in self.methods:
            raise ValueError(f"reference {self.reference!r} is not one of the methods ({', '.join(self.methods)})")
        if self.methods[self.reference].adapts is not None:
            raise ValueError(f"the reference {self.reference!r} is trained: it cannot adapt a run")
        for name, m in self.methods.items():
            unknown = sorted(set(m.families or ()) - set(self.families))
            if unknown:
                raise ValueError(f"method {name!r} names unknown family {unknown[0]!r}")
        return self

    def applies(self, method: str, family: str) -> bool:
        fams = self.methods[method].families
        return fams is None or family in fams


class ShiftCell(BaseModel):
    """One lever run: a family and method trained on every corpus but ``held_out``, and what it is compared with."""

    model_config = ConfigDict(frozen=True)

    family: str
    method: str
    held_out: str
    id: str
    reference_id: str
    in_domain_id: str


class ShiftPlan(MatrixPlan):
    """An N-corpus benchmark of levers: the matrix plan (the first family's in-domain and pooled runs) and the cells."""

    families: tuple[str, ...]
    methods: tuple[str, ...]  # in the file's order, the reference first
    reference: str
    titles: dict[str, str] = Field(default_factory=dict, description="method -> title")
    assumes: dict[str, str] = Field(default_factory=dict, description="method -> what it needs of the target")
    cells: tuple[ShiftCell, ...]

    def cell(self, family: str, method: str, held_out: str) -> ShiftCell | None:
        return next(
            (c for c in self.cells if (c.family, c.method, c.held_out) == (family, method, held_out)), None
        )


def is_domain_shift(raw: object) -> bool:
    return isinstance(raw, dict) and "domain_shift" in raw


def is_generated(raw: object) -> bool:
    """Whether a study file generates its experiments from the ``--corpus`` list (N-corpus or benchmark)."""
    return is_cross_corpus(raw) or is_domain_shift(raw)


def experiment_id(family: str, method: str, corpus: str) -> str:
    return f"{family}.{method}.{corpus}"


def _experiment(eid: str, title: str, family: dict[str, Any], overlay: dict[str, Any], train: Sequence[str],
                policy: str, description: str) -> dict[str, Any]:
    config = merge(merge(family, overlay), {"data": {"corpora": list(train), "labels": policy}})
    return {
        "id": eid,
        "title": title,
        "architecture": str((config.get("model") or {}).get("name", "resnet18")),
        "data_strategy": " + ".join(train),
        "description": description,
        "config": config,
    }


def _adaptation(eid: str, title: str, family: dict[str, Any], adapts: AdaptMethod, reference: str, held: str,
                train: Sequence[str]) -> dict[str, Any]:
    scored = "its other speakers scored" if adapts.few_shot else "every utterance scored"
    return {
        "id": eid,
        "title": title,
        "architecture": str((family.get("model") or {}).get("name", "resnet18")),
        "data_strategy": f"{' + '.join(train)}, adapted to {held}",
        "description": f"{reference}'s run adapted to {held} ({adapts.describe()}); {scored}",
        "adapt_of": reference,
        "adapt": {**adapts.model_dump(mode="json", exclude_none=True), "corpus": held},
    }


def _generate(
    spec: DomainShiftSpec, corpora: Sequence[str], roots: Mapping[str, str], policy: str
) -> tuple[list[dict[str, Any]], list[ShiftCell], list[dict[str, Any]]]:
    """(experiments, cells, claims) for every family, corpus and method."""
    experiments: list[dict[str, Any]] = []
    cells: list[ShiftCell] = []
    claims: list[dict[str, Any]] = []
    held = [c for c in corpora if spec.held_out is None or c in spec.held_out]
    for fam, overlay in spec.families.items():
        for c in held:
            experiments.append(_experiment(
                experiment_id(fam, IN_DOMAIN, c), f"{fam}: in-domain {c} (the ceiling)", overlay, spec.in_domain,
                [c], policy, f"trained and scored on {c} (speaker-independent): what closing the gap would reach",
            ))  # fmt: skip
        for c in held:
            others = [o for o in corpora if o != c]
            reference = experiment_id(fam, spec.reference, c)
            for name, m in spec.methods.items():
                if not spec.applies(name, fam):
                    continue
                eid = experiment_id(fam, name, c)
                if m.adapts is not None:  # the reference's run adapted to the held-out corpus: nothing trained
                    experiments.append(_adaptation(eid, f"{fam}: {m.title or name}, {c} held out", overlay, m.adapts,
                                                   reference, c, others))
                else:
                    lever = merge(m.config, {"data": {"unlabelled": {c: roots[c]}}} if m.unlabelled else {})
                    experiments.append(_experiment(
                        eid, f"{fam}: {m.title or name}, {c} held out", overlay, lever, others, policy,
                        f"trained on {' and '.join(others)} ({m.title or name}); {c} held out, scored on every "
                        "utterance",
                    ))  # fmt: skip
                cells.append(ShiftCell(family=fam, method=name, held_out=c, id=eid, reference_id=reference,
                                       in_domain_id=experiment_id(fam, IN_DOMAIN, c)))  # fmt: skip
                if name != spec.reference:
                    claims.append({"claim": f"{m.title or name} beats {spec.reference} training on held-out {c} "
                                   f"({fam})", "kind": "better", "a": eid, "b": reference, "corpora": [c]})
    return experiments, cells, claims


def _plan(spec: DomainShiftSpec, corpora: Sequence[str], labels: dict[str, Any], cells: list[ShiftCell]) -> ShiftPlan:
    first = next(iter(spec.families))
    rows: list[MatrixRow] = []
    if spec.held_out is None:  # the matrix needs every corpus's in-domain model
        rows += [MatrixRow(id=experiment_id(first, IN_DOMAIN, c), kind="single", train=(c,)) for c in corpora]
        rows += [
            MatrixRow(id=experiment_id(first, spec.reference, c), kind="loco",
                      train=tuple(o for o in corpora if o != c), held_out=c)
            for c in corpora
        ]  # fmt: skip
    return ShiftPlan(
        rows=tuple(rows),
        **labels,
        families=tuple(spec.families),
        methods=tuple([spec.reference, *(m for m in spec.methods if m != spec.reference)]),
        reference=spec.reference,
        titles={k: m.title or k for k, m in spec.methods.items()},
        assumes={k: m.assumes for k, m in spec.methods.items()},
        cells=tuple(cells),
    )


def expand(
    raw: dict[str, Any],
    roots: Mapping[str, str],
    *,
    profile: str | None = None,
    overrides: Sequence[str] = (),
) -> tuple[dict[str, Any], MatrixPlan]:
    """The study file with its experiments generated for ``roots`` (name -> root, in command-line order): an
    N-corpus matrix (``cross_corpus:``, :func:`emoshift.study.cross_corpus.expand`) or this benchmark."""
    if not is_domain_shift(raw):
        return expand_matrix(raw, roots, profile=profile, overrides=overrides)
    if is_cross_corpus(raw):
        raise CrossCorpusError("a study file has a cross_corpus or a domain_shift section, not both")
    try:
        spec = DomainShiftSpec.model_validate(raw.get("domain_shift") or {})
    except ValidationError as e:
        raise CrossCorpusError(f"domain_shift: {explain(e, DomainShiftSpec)}") from None
    if raw.get("experiments"):
        raise CrossCorpusError("a study file with a domain_shift section generates its experiments: drop 'experiments'")
    corpora = list(roots)
    if not MIN_CORPORA <= len(corpora) <= MAX_CORPORA:
        raise CrossCorpusError(
            f"a leave-one-corpus-out benchmark takes {MIN_CORPORA} to {MAX_CORPORA} corpora (--corpus NAME=ROOT), "
            f"got {len(corpora)}"
        )
    unknown = [c for c in spec.held_out or () if c not in corpora]
    if unknown:
        raise CrossCorpusError(f"domain_shift.held_out: {unknown[0]!r} is not one of the --corpus names "
                               f"({', '.join(corpora)})")
    labels = shared_labels(roots, raw, CrossCorpusSpec(labels=spec.labels, min_class_share=spec.min_class_share))
    experiments, cells, claims = _generate(spec, corpora, roots, labels["policy"])
    study = {k: v for k, v in raw.items() if k != "domain_shift"}
    study["experiments"] = experiments
    findings = dict(study.get("findings") or {})
    findings["claims"] = [*(findings.get("claims") or []), *claims]
    study["findings"] = findings
    return study, _plan(spec, corpora, labels, cells)


__all__ = [  # MatrixPlan: the plan of every generated study (this benchmark's is a ShiftPlan)
    "DomainShiftSpec", "MatrixPlan", "MethodSpec", "ShiftCell", "ShiftPlan", "expand", "experiment_id", "is_generated",
]
