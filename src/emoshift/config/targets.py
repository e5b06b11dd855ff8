"""How a categorical run's training targets are made (``training.targets``, ``training.soft_mix``): the label
(hard), or the raters' vote distribution (soft, docs/soft-labels.md). A part of :class:`TrainingConfig
<emoshift.config.experiment.TrainingConfig>`, which inherits these keys."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class SoftTargets(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    targets: Literal["hard", "soft"] = Field(
        "hard", description="hard: the label; soft: cross-entropy to the raters' vote distribution"
    )
    soft_mix: float = Field(
        0.0, ge=0.0, le=1.0, description="targets soft: weight of the hard label in the target (0 = the votes alone)"
    )

    @model_validator(mode="after")
    def _soft_mix_needs_soft(self) -> SoftTargets:
        if self.soft_mix > 0 and self.targets != "soft":
            raise ValueError("training.soft_mix mixes the hard label into soft targets: set training.targets: soft")
        if self.targets == "soft" and getattr(self, "distill", None) is not None:
            raise ValueError("training.targets: soft and training.distill each set the soft target: choose one")
        return self
