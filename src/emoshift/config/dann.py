"""Domain-adversarial training (DANN, Ganin et al. 2015): ``training.dann``. A corpus classifier behind a
gradient-reversal layer learns which corpus a clip comes from, and the reversed gradient pushes the model's
pooled embedding to hide it (:mod:`emoshift.training.adversary`; docs/dann.md).

``training.dann: {weight: 0.3, schedule: ganin}`` turns it on (null, the default, is off); ``data.unlabelled:
{NAME: ROOT}`` (:class:`emoshift.config.experiment.DataConfig`) adds target corpora whose audio only joins the
corpus classifier's loss (their labels are never read).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from emoshift.config.split import corpus_key


class DannConfig(BaseModel):
    """``training.dann``: the adversary's loss weight and how it ramps up over training."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    weight: float = Field(1.0, gt=0.0, description="the largest weight of the corpus classifier's reversed gradient")
    schedule: Literal["ganin", "constant"] = Field(
        "ganin", description="ganin: weight * (2 / (1 + exp(-10 p)) - 1) at training progress p; constant: weight"
    )

    def reversal(self, progress: float) -> float:
        """The gradient-reversal weight at training ``progress`` p in [0, 1] (the share of steps done)."""
        if self.schedule == "constant":
            return self.weight
        p = min(1.0, max(0.0, progress))
        return self.weight * (2.0 / (1.0 + math.exp(-10.0 * p)) - 1.0)


# data.unlabelled: target corpus name (canonical, as data.roots's) -> root
Unlabelled = Annotated[dict[str, str], AfterValidator(lambda v: {corpus_key(k): str(r) for k, r in v.items()})]
UNLABELLED_HELP = (
    "training.dann: target corpora whose audio (never their labels) joins the corpus classifier: name -> root "
    "(a corpus folder, a manifest table or source, or a folder of audio files)"
)


def domains(corpora: Sequence[str], unlabelled: Mapping[str, str]) -> list[str]:
    """The corpus classifier's classes: the training corpora, then each unlabelled corpus."""
    return [*corpora, *unlabelled]


def check_dann(dann: DannConfig | None, corpora: Sequence[str], unlabelled: Mapping[str, str], mixup: float) -> None:
    """ValueError (one line) when ``training.dann`` / ``data.unlabelled`` cannot train as configured."""
    if dann is None:
        if unlabelled:
            raise ValueError(
                "data.unlabelled is read by domain-adversarial training only: set training.dann "
                "(e.g. --set 'training.dann={weight: 0.3}')"
            )
        return
    if both := [c for c in unlabelled if c in corpora]:
        raise ValueError(
            f"data.unlabelled names {both[0]!r}, a training corpus: its labelled audio is a domain already "
            "(data.unlabelled is for target corpora the model does not train on)"
        )
    if len(domains(corpora, unlabelled)) < 2:
        raise ValueError(
            "training.dann needs at least two domains for its corpus classifier: train on two corpora or add "
            "a target corpus's audio with data.unlabelled: {NAME: ROOT}"
        )
    if mixup > 0:
        raise ValueError(
            "training.dann with training.augment.mixup_alpha: a mixed clip belongs to no one corpus; use one or "
            "the other"
        )
