"""Model families behind the registry: one object per kind of model, asked instead of branching on strings.

A registered model (:func:`emoshift.models.get_spec`) names its input kind; the family serving that input kind
(and, for families that care, the config's ``model.mode``) is found by :func:`emoshift.models.family_of`, the one
lookup (here: :func:`family_serving`). Built in:

- ``cnn`` (:class:`CNNFamily`): ``resnet18``, ``efficientnet_b0`` on log-mel crops (FeatureCache);
- ``ssl-finetune`` (:class:`SSLFinetuneFamily`): ``hubert``, ``ssl`` with ``model.mode=finetune`` (raw waveforms);
- ``ssl-frozen`` (:class:`SSLFrozenFamily`): ``hubert``, ``ssl`` with ``model.mode=frozen`` (EmbeddingCache + head);
- ``acoustic`` (:class:`AcousticFamily`): ``egemaps``, ``compare`` (openSMILE functionals + scikit-learn head).

A new family subclasses :class:`Family` (any ``fit``) or :class:`NeuralFamily` (the Lightning fit), and is added
with :func:`register_family`; its models with :func:`emoshift.models.register_model`.
"""

from __future__ import annotations

from emoshift.models.families.acoustic import AcousticFamily
from emoshift.models.families.base import (
    MAX_SECONDS,
    Family,
    FitData,
    Fitted,
    NeuralFamily,
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
    "family_serving",
    "get_family",
    "list_families",
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
    """The family registered as ``name`` (its own name, e.g. "cnn"; a model's family: ``models.family_of``)."""
    if name not in _FAMILIES:
        raise KeyError(f"unknown model family {name!r}; available: {', '.join(list_families())}")
    return _FAMILIES[name]


def family_serving(model: str, kind: str, mode: str | None = None) -> Family:
    """The family serving input ``kind`` (of registered model ``model``) under config ``model.mode`` ``mode``."""
    found = [f for f in _FAMILIES.values() if f.input_kind == kind and f.mode in (None, mode)]
    if len(found) != 1:
        served = sorted(str(f.mode) for f in _FAMILIES.values() if f.input_kind == kind)
        raise ValueError(f"model {model!r} has no family for mode {mode!r} (modes served: {', '.join(served)})")
    return found[0]


for _family in (CNNFamily(), SSLFinetuneFamily(), SSLFrozenFamily(), AcousticFamily()):
    register_family(_family)
