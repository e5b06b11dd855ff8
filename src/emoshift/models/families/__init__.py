"""Model families behind the registry: one object per kind of model, asked instead of branching on strings.

A registered model (:func:`emoshift.models.get_spec`) names its input kind; the family serving that input kind
(and, for families that care, the config's ``model.mode``) is found by :func:`family_for`. Built in:

- ``cnn`` (:class:`CNNFamily`): ``resnet18``, ``efficientnet_b0`` on log-mel crops (FeatureCache);
- ``ssl-finetune`` (:class:`SSLFinetuneFamily`): ``hubert``, ``ssl`` with ``model.mode=finetune`` (raw waveforms);
- ``ssl-frozen`` (:class:`SSLFrozenFamily`): ``hubert``, ``ssl`` with ``model.mode=frozen`` (EmbeddingCache + head);
- ``acoustic`` (:class:`AcousticFamily`): ``egemaps``, ``compare`` (openSMILE functionals + scikit-learn head).

A new family subclasses :class:`Family` (any ``fit``) or :class:`NeuralFamily` (the Lightning fit), and is added
with :func:`register_family`; its models with :func:`emoshift.models.register_model`.
"""

from __future__ import annotations

from typing import Any

from emoshift.models.families.acoustic import AcousticFamily
from emoshift.models.families.base import (
    MAX_SECONDS,
    Family,
    FitData,
    Fitted,
    NeuralFamily,
    is_dimensional,
    num_outputs,
)
from emoshift.models.families.cnn import CNNFamily
from emoshift.models.families.ssl import SSLFinetuneFamily, SSLFrozenFamily

__all__ = [
    "MAX_SECONDS",
    "AcousticFamily",
    "CNNFamily",
    "Family",
    "FitData",
    "Fitted",
    "NeuralFamily",
    "SSLFinetuneFamily",
    "SSLFrozenFamily",
    "family_for",
    "family_for_info",
    "get_family",
    "is_dimensional",
    "list_families",
    "num_outputs",
    "register_family",
]

_FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> None:
    """Add a family; a name already registered, or an (input kind, mode) already served, raises ValueError."""
    if family.name in _FAMILIES:
        raise ValueError(f"a model family named {family.name!r} is already registered")
    for other in _FAMILIES.values():
        same_modes = other.mode is None or family.mode is None or other.mode == family.mode
        if other.input_kind == family.input_kind and same_modes:
            raise ValueError(
                f"model family {family.name!r} serves input {family.input_kind!r} (mode {family.mode}), "
                f"as {other.name!r} already does"
            )
    _FAMILIES[family.name] = family


def list_families() -> list[str]:
    return sorted(_FAMILIES)


def get_family(name: str) -> Family:
    if name not in _FAMILIES:
        raise KeyError(f"unknown model family {name!r}; available: {', '.join(list_families())}")
    return _FAMILIES[name]


def family_for(model: str, mode: str | None = None) -> Family:
    """The family of registered model ``model`` under config ``model.mode`` ``mode``."""
    from emoshift.models import get_spec

    kind = get_spec(model).input_kind
    found = [f for f in _FAMILIES.values() if f.input_kind == kind and f.mode in (None, mode)]
    if len(found) != 1:
        served = sorted(str(f.mode) for f in _FAMILIES.values() if f.input_kind == kind)
        raise ValueError(f"model {model!r} has no family for mode {mode!r} (modes served: {', '.join(served)})")
    return found[0]


def family_for_info(info: dict[str, Any]) -> Family:
    """The family of a saved model (model.json: its ``model`` and, for SSL models, ``mode``)."""
    return family_for(info["model"], info.get("mode"))


for _family in (CNNFamily(), SSLFinetuneFamily(), SSLFrozenFamily(), AcousticFamily()):
    register_family(_family)
