"""An adaptation step in a study: another experiment's finished run adapted to a corpus it did not train on, as
``emoshift adapt`` does it (docs/adaptation.md, docs/fewshot.md), instead of training.

In a study file::

    - id: L2-adabn-crema
      title: L2 adapted to CREMA-D (AdaBN)
      architecture: ResNet18
      data_strategy: RAVDESS, AdaBN on CREMA-D
      adapt_of: L2                      # a training experiment of this study: it runs first
      adapt: {method: adabn, corpus: crema-d}

``method`` is one of ``emoshift adapt``'s: ``corpus-norm`` or ``adabn`` (the target's unlabelled audio; every
utterance of it is then scored) or ``few-shot`` (``labelled_speakers: K`` of the target, chosen by ``seed``,
gender-balanced; the target's other speakers are scored, never one adapted on). Each seed run of the adapted
experiment (``training.seeds``) is adapted in turn and the adapted runs pooled as training pools seeds, so
the findings compare it with its source seed pair by seed pair on the utterances both scored; the few-shot
speakers are the same for every seed. The target's root is the study's ``--corpus`` root. An adaptation reads
no label of the target beyond the K speakers' (the unsupervised methods none).

Torch-free: the study spec validates these; :mod:`emoshift.study.plan` runs them through
:mod:`emoshift.training.seeds` (``adapt_seeds``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from emoshift.study.records import derived_fingerprint

__all__ = ["AdaptMethod", "AdaptSpec", "adapt_fingerprint"]

FEW_SHOT = "few-shot"


class AdaptMethod(BaseModel):
    """What is done to a finished run: ``emoshift adapt``'s method and, few-shot, K and the speakers' seed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["corpus-norm", "adabn", "few-shot"]
    labelled_speakers: int | None = Field(None, ge=1, description="few-shot: K labelled target speakers")
    seed: int = Field(0, description="few-shot: the seed that chooses the K speakers (the same for every run seed)")

    @model_validator(mode="after")
    def _k(self) -> AdaptMethod:
        if (self.method == FEW_SHOT) != (self.labelled_speakers is not None):
            raise ValueError(
                "labelled_speakers: K goes with method: few-shot, and only with it"
                if self.labelled_speakers is not None else "method: few-shot needs labelled_speakers: K"
            )
        return self

    @property
    def few_shot(self) -> bool:
        return self.method == FEW_SHOT

    def describe(self) -> str:
        if self.few_shot:
            return f"few-shot on {self.labelled_speakers} labelled speaker(s) (seed {self.seed})"
        return f"{self.method} on the unlabelled audio"


class AdaptSpec(AdaptMethod):
    """An experiment's ``adapt:``: the method and the target corpus (a ``--corpus`` name of the study)."""

    corpus: str

    @field_validator("corpus")
    @classmethod
    def _canonical(cls, v: str) -> str:
        from emoshift.corpora import canonical_name

        try:
            return canonical_name(v)
        except KeyError:
            return v  # a corpus of your own: its --corpus name


def adapt_fingerprint(spec: AdaptSpec, source_done: dict[str, Any]) -> str:
    """What an adapted experiment's run was made from: the step, and the source run's fingerprint and finish
    time (a retrained source makes the adaptation stale)."""
    return derived_fingerprint("adapt", spec.model_dump(mode="json"), source_done)
