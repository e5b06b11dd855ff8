"""Model registry, in the manner of torchvision: ``list_models()`` and ``get_model(name, num_labels=..., **cfg)``.

The CLI, the tests, the study and the prediction service all enumerate this registry. Every model maps one
input kind to logits ``(B, num_labels)``:

- ``"spectrogram"``: log-mel batches ``(B, 1, n_mels, T)`` (``resnet18``, ``efficientnet_b0``);
- ``"waveform"``: 16 kHz waveforms ``(B, S)`` with an attention mask ``(B, S)`` (``hubert``, ``ssl``);
- ``"functionals"``: openSMILE functionals per utterance, a scikit-learn head (``egemaps``, ``compare``): not a
  torch module, it gives log-probabilities through its family (:mod:`emoshift.models.families.acoustic`).

What a kind of model needs (input, caches, batches, training, saving) is its family's business:
:func:`family_of` (:mod:`emoshift.models.families`). Registering a name twice raises, as torchvision's
``register_model`` does.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from emoshift.config import ExperimentConfig, ModelConfig
    from emoshift.models.families import Family

from emoshift.core.errors import EmoshiftError


class PretrainedUnavailableError(EmoshiftError, RuntimeError):
    """Pretrained weights could not be found locally nor fetched; the message says how to fix it (one line)."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    input_kind: str  # "spectrogram" | "waveform" | "functionals": the input its family serves
    module: str  # module holding the builder
    builder: str  # builder function name in that module
    description: str


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> None:
    """Add a model to the registry (used by emoshift.models.ssl_registry and by plug-ins).

    A name already registered raises ValueError (a plug-in cannot silently replace a built-in model).
    """
    if spec.name in _REGISTRY:
        raise ValueError(f"a model named {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec


register_model(
    ModelSpec("resnet18", "spectrogram", "emoshift.models.cnn_nets", "resnet18", "ResNet-18 (transformers) on log-mels")
)
register_model(
    ModelSpec(
        "efficientnet_b0",
        "spectrogram",
        "emoshift.models.cnn_nets",
        "efficientnet_b0",
        "EfficientNet-B0 (transformers) on log-mels",
    )
)

for _name, _what in (("egemaps", "eGeMAPSv02 (88)"), ("compare", "ComParE_2016 (6,373)")):
    register_model(
        ModelSpec(
            _name,
            "functionals",
            "emoshift.models.families.acoustic",
            _name,
            f"openSMILE {_what} functionals + linear head (model.head: svm|logreg; model.speaker_norm)",
        )
    )


def _ensure_builtin() -> None:
    # SSL encoders live in their own module; importing it registers `hubert` and `ssl`.
    importlib.import_module("emoshift.models.ssl_registry")


def family_of(name: str, mode: str | None = None) -> Family:
    """The family of registered model ``name`` under ``model.mode`` ``mode`` (see emoshift.models.families): the
    one lookup, for a config (``model.name``, ``model.mode``) and a saved model (its record's ``model``, ``mode``).
    KeyError for a name not registered, ValueError for a mode no family serves."""
    from emoshift.models.families import family_serving

    return family_serving(name, get_spec(name).input_kind, mode)


def list_models() -> list[str]:
    _ensure_builtin()
    return sorted(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    _ensure_builtin()
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def model_input_kind(name: str) -> str:
    return get_spec(name).input_kind


def get_builder(name: str) -> Callable[..., Any]:
    spec = get_spec(name)
    return getattr(importlib.import_module(spec.module), spec.builder)


def get_model(name: str, *, num_labels: int, **cfg: Any) -> Any:
    """Build registered model ``name`` with a fresh head of ``num_labels`` outputs (classes, or the targets of a
    dimensional run: one is enough there) (an ``nn.Module``, or the
    acoustic family's :class:`~emoshift.models.families.acoustic.AcousticModel` for ``egemaps``/``compare``).

    ``cfg`` holds the builder's keyword arguments (e.g. ``pretrained``, ``dropout``); an unknown one raises
    a TypeError naming it.
    """
    if num_labels < 1:
        raise ValueError(f"num_labels must be at least 1, got {num_labels}")
    return get_builder(name)(num_labels=num_labels, **cfg)


class RegistryChecks:
    """The registry's checks of a config (:class:`emoshift.config.ConfigChecks`): the config schema knows no
    model code, so the code that loads a config for use passes :data:`CONFIG_CHECKS` to ``load_config`` /
    ``build_config`` and these run inside its validation (ValueError, one line, named by the config's key)."""

    def check_name(self, name: str) -> None:
        if name not in list_models():
            close = difflib.get_close_matches(name, list_models(), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"unknown model {name!r}{hint}; available: {', '.join(list_models())}")

    def check_model(self, model: ModelConfig) -> None:
        family_of(model.name, model.mode).check_model(model)

    def check_config(self, cfg: ExperimentConfig) -> None:
        family = family_of(cfg.model.name, cfg.model.mode)
        family.check_levers(cfg)
        family.check_config(cfg)


CONFIG_CHECKS = RegistryChecks()


def _family_unused(cfg: ExperimentConfig) -> frozenset[str]:
    """The keys ``cfg``'s model family does not read (none for a name the registry does not know)."""
    try:
        return family_of(cfg.model.name, cfg.model.mode).unused(cfg)
    except (KeyError, ValueError, EmoshiftError):
        return frozenset()


def _register_unused() -> None:
    from emoshift.config.experiment import set_family_unused

    set_family_unused(_family_unused)


_register_unused()


def check_config(cfg: ExperimentConfig) -> None:
    """ConfigError (one line) when the registry refuses ``cfg``: for a config built without
    :data:`CONFIG_CHECKS` (``emoshift.load_config`` in a script), checked before anything is trained."""
    from emoshift.config import build_config

    build_config(cfg.to_dict(), checks=CONFIG_CHECKS)
