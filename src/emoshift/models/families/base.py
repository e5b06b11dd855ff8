"""What a model family says, and the Lightning path the neural families share.

A family answers every question about a kind of model that used to be a branch on an ``input_kind`` string:

- config: the builder's keyword arguments (:meth:`Family.builder_kwargs`), extra checks
  (:meth:`Family.check_config`), a one-line description for model.json (:meth:`Family.describe`);
- training data: the stores its input is read from (:meth:`Family.prepare_stores`: log-mel FeatureCache,
  EmbeddingCache, or none for raw waveforms), its datasets and batching (:meth:`Family.datasets`,
  :meth:`Family.max_batch_samples`), how a batch reaches the net (:meth:`Family.forward`) and is augmented
  (:meth:`Family.augment`), the net that trains (:meth:`Family.train_net`) and its optimiser groups;
- how it trains (:meth:`Family.fit`; :class:`NeuralFamily` fits with the Lightning loop training/ passes in, a family may fit otherwise:
  the acoustic family's model is a scikit-learn head, not a torch module, so "model" is ``Any`` here);
- saving: what model.json records (:meth:`Family.architecture_info`), the weights in the run directory
  (:meth:`Family.save`: safetensors, never a pickle) and rebuilding from both (:meth:`Family.rebuild`,
  :meth:`Family.load`);
- inference: raw outputs for utterances (:meth:`Family.outputs`: logits, or a rated model's values) and one waveform's input (:meth:`Family.prepare_input`,
  :meth:`Family.predict`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn

from emoshift.core.record import ModelRecord

if TYPE_CHECKING:
    from torch.utils.data import Dataset

    from emoshift.config import AugmentConfig, ExperimentConfig, ModelConfig, TrainingConfig
    from emoshift.config.features import FeatureConfig
    from emoshift.core.rundir import RunDir
    from emoshift.corpora import Scan
    from emoshift.corpora.base import Skipped, Utterance
    from emoshift.data.datasets import Item
    from emoshift.features.speaker_norm import Moments

Advance = Callable[[int], None]
FitLoop = Callable[..., "Fitted"]  # (family, cfg, data, run, *, model, progress, callbacks, loggers) -> Fitted
MAX_SECONDS = 8.0  # waveform models see at most this much audio (centred) at inference


@dataclass
class FitData:
    """What ``fit`` trains on: labels (empty for a dimensional run, whose items carry ``target``), train/val
    items and the stores ``prepare_stores`` opened."""

    labels: list[str]
    train: list[Item]
    val: list[Item]
    stores: dict[str, Any]
    teacher_logits: torch.Tensor | None = None  # (N_train, C), aligned with ``train``
    # training.dann: the data.unlabelled corpora's items (label -1, never read; corpus: their domain index)
    unlabelled: list[Item] = field(default_factory=list)


@dataclass
class Fitted:
    """``fit``'s result: the trained model (best weights loaded), epochs run, and whether this process saves."""

    model: Any  # an nn.Module for neural families; the acoustic family's AcousticBaseline
    epochs_run: int
    is_main: bool = True


class Family(ABC):
    """One kind of model; see the module docstring. Subclasses set the class attributes."""

    name: ClassVar[str]  # registry key of the family
    input_kind: ClassVar[str]  # what the saved model takes (model.json "input_kind"): ModelSpec.input_kind
    mode: ClassVar[str | None] = None  # the model.mode this family serves (None: the family ignores mode)
    # Whether the whole model (front end included) is a torch graph that ONNX export can trace; a family that
    # is not says why in ``not_exportable`` (one line, for the user).
    exportable: ClassVar[bool] = True
    not_exportable: ClassVar[str] = ""
    # Dotted config keys (a whole section, or one key) this family never reads: RUN/config.yaml leaves them
    # out and the run's identity (the config fingerprint) ignores them, so changing one retrains nothing.
    unused_keys: ClassVar[frozenset[str]] = frozenset()
    # The adaptation levers (docs/adaptation.md) this family's models take: per-corpus input standardisation
    # (model.domain_norm: corpus; emoshift adapt --method corpus-norm) and batch-norm re-estimation (AdaBN:
    # evaluation.adapt: adabn; emoshift adapt --method adabn).
    corpus_norm: ClassVar[bool] = False
    corpus_norm_over: ClassVar[str] = "input"  # what one statistic is taken over (CorpusStats.over)
    batchnorm: ClassVar[bool] = False

    # -- config ---------------------------------------------------------------------------------------
    @abstractmethod
    def builder_kwargs(self, m: ModelConfig) -> dict[str, Any]:
        """The registered builder's keyword arguments for model config ``m``."""

    def check_model(self, m: ModelConfig) -> None:
        """Raise ValueError (one line) when model config ``m`` asks for something this family cannot build."""
        return None

    def check_config(self, cfg: ExperimentConfig) -> None:
        """Raise ValueError (one line) when ``cfg`` asks this family for something it cannot do."""
        return None

    def check_levers(self, cfg: ExperimentConfig) -> None:
        """Raise ValueError (one line) when ``cfg`` asks for an adaptation lever this family's models lack."""
        if cfg.model.domain_norm != "none" and not self.corpus_norm:
            raise ValueError(f"model.domain_norm: {cfg.model.domain_norm} standardises log-mels, functionals or frozen "
                             f"embeddings per corpus; {cfg.model.name} ({self.name}) has none of them to standardise")
        if cfg.evaluation.adapt == "adabn" and not self.batchnorm:
            raise ValueError(f"evaluation.adapt: adabn re-estimates batch-norm statistics; {cfg.model.name} "
                             f"({self.name}) has no batch norm (the CNNs have)")

    def unused(self, cfg: ExperimentConfig) -> frozenset[str]:
        """The dotted keys of ``cfg`` this family does not read (:attr:`unused_keys`, and any that depend on
        the config, e.g. the task)."""
        return self.unused_keys

    @abstractmethod
    def describe(self, cfg: ExperimentConfig) -> str:
        """A one-line description for model.json's "architecture"."""

    # -- model ----------------------------------------------------------------------------------------
    def build(self, cfg: ExperimentConfig, *, num_labels: int) -> Any:
        from emoshift.models import get_model

        return get_model(cfg.model.name, num_labels=num_labels, **self.builder_kwargs(cfg.model))

    @abstractmethod
    def architecture_info(self, cfg: ExperimentConfig, model: Any) -> dict[str, Any]:
        """model.json's architecture keys (``model``, ``dropout``, what ``rebuild`` needs)."""

    @abstractmethod
    def rebuild(self, info: ModelRecord) -> Any:
        """The architecture model.json describes, with random weights (no download)."""

    def save(self, model: Any, run: RunDir) -> None:
        """Write the trained weights into ``run`` (``model.safetensors``; never a pickle)."""
        from emoshift.models.weights import save_weights

        save_weights(model, run.weights)

    def load(self, run: RunDir, info: ModelRecord) -> Any:
        """The trained model of ``run``: :meth:`rebuild` from model.json ``info``, then its weights."""
        from emoshift.core.rundir import RunError
        from emoshift.models.weights import load_weights

        if not run.weights.is_file():
            raise RunError(f"{run.path}: model.safetensors is missing")
        model = self.rebuild(info)
        load_weights(model, run.weights)
        return model

    # -- training -------------------------------------------------------------------------------------
    def prepare_stores(
        self, cfg: ExperimentConfig, model: Any, scans: dict[str, Scan], *, progress: bool, train: Sequence[Item] = ()
    ) -> dict[str, Any]:
        """corpus -> store of cached inputs (utterances missing from a store are dropped); {} for none.
        ``train``: the run's training items (a family may fit input statistics on their speakers)."""
        return {}

    @abstractmethod
    def fit(
        self,
        cfg: ExperimentConfig,
        data: FitData,
        run: RunDir,
        *,
        model: Any,
        progress: bool,
        callbacks: Sequence[Any] = (),
        loggers: Sequence[Any] = (),
        fit_loop: FitLoop | None = None,
    ) -> Fitted:
        """Train ``model`` on ``data`` (resuming from ``run``'s checkpoints if any) and return it trained;
        ``loggers``: Lightning loggers (experiment tracking) for a family that trains with Lightning;
        ``fit_loop``: the training layer's fit a neural family trains through (``training.fit.fit_lightning``;
        fit_lightning`; passed in, as the loggers are: this layer never imports training/)."""

    # -- inference ------------------------------------------------------------------------------------
    @abstractmethod
    def outputs(
        self,
        model: Any,
        info: ModelRecord,
        utterances: Sequence[Utterance],
        *,
        cache_dir: str,
        batch_size: int,
        device: torch.device,
        advance: Advance,
        progress: bool,
    ) -> tuple[list[Utterance], np.ndarray, list[Skipped]]:
        """(kept utterances, raw outputs (N, K), skipped ones with reasons); ``advance(n)`` after each batch.

        K is ``info.num_outputs``: class logits, or a rated model's values ``(N, T)`` on its ``target_range``;
        the record's task (:mod:`emoshift.core.task`) says what they are."""

    @abstractmethod
    def prepare_input(self, wave: np.ndarray, fcfg: FeatureConfig) -> torch.Tensor:
        """One mono waveform at ``fcfg.sample_rate`` (trimmed as configured) -> the model's input, batch of 1."""

    def predict(self, model: Any, x: torch.Tensor) -> torch.Tensor:
        """Raw outputs ``(B, K)`` (logits or values) for an input ``prepare_input`` made."""
        return model(x)  # type: ignore[no-any-return]

    # -- adaptation to a target corpus's unlabelled audio (never its labels) ------------------------------
    def check_adaptation(self, info: ModelRecord, method: str) -> None:
        """Raise AdaptationError (one line) when the model ``info`` describes cannot be adapted by ``method``
        ("corpus-norm" or "adabn"), before any audio is read."""
        from emoshift.models.adaptation import AdaptationError

        if method == "adabn" and not self.batchnorm:
            raise AdaptationError(f"{info.model} ({self.name}) has no batch norm to re-estimate (AdaBN applies to "
                                  "the CNNs: resnet18, efficientnet_b0)")
        if method == "corpus-norm" and not self.corpus_norm:
            raise AdaptationError(f"{info.model} ({self.name}) has no input standardisation that corpus statistics "
                                  "set (corpus-norm applies to the CNNs, the acoustic baselines and frozen SSL heads)")

    def adapt_corpus_norm(
        self, model: Any, info: ModelRecord, utterances: Sequence[Utterance], *, cache_dir: str, progress: bool
    ) -> tuple[Moments, int]:
        """Set ``model``'s fixed input standardisation (what a clip of unknown origin gets) to the statistics
        of ``utterances``' inputs, one corpus's; returns them and the clips they were taken over."""
        self.check_adaptation(info, "corpus-norm")
        raise NotImplementedError(f"{self.name} says it takes corpus-norm but does not implement it")

    def adapt_batchnorm(
        self, model: Any, info: ModelRecord, utterances: Sequence[Utterance], *, cache_dir: str, batch_size: int,
        device: torch.device, progress: bool,
    ) -> int:
        """AdaBN: re-estimate ``model``'s batch-norm statistics on ``utterances``' inputs (one corpus's), every
        weight unchanged; returns the clips seen."""
        self.check_adaptation(info, "adabn")
        raise NotImplementedError(f"{self.name} says it has batch norm but does not implement AdaBN")


class NeuralFamily(Family):
    """A torch net trained with Lightning: the fit (:mod:`emoshift.training.fit`) is passed in as ``fit_loop``."""

    def train_net(self, model: nn.Module) -> nn.Module:
        """The module that trains (its parameters are ``model``'s, so training it trains ``model``)."""
        return model

    @abstractmethod
    def datasets(
        self, cfg: ExperimentConfig, train: list[Item], val: list[Item], stores: dict[str, Any]
    ) -> tuple[Dataset[Any], Dataset[Any]]:
        """Training and validation datasets (no I/O at construction)."""

    def max_batch_samples(self, cfg: ExperimentConfig) -> int | None:
        """A cap on padded samples per batch (length-bucketed batches), or None for fixed-size batches."""
        return None

    def forward(self, net: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """A collated batch -> logits ``(B, C)``."""
        return net(batch["x"])  # type: ignore[no-any-return]

    def embedding_head(self, net: nn.Module) -> nn.Module:
        """The module of the training net ``net`` that the pooled embedding ``(B, D)`` enters: its head (the
        corpus classifier of ``training.dann`` reads the same embedding). Every net here names it ``head``."""
        head = getattr(net, "head", None)
        if not isinstance(head, nn.Module):
            raise TypeError(f"{type(net).__name__} has no 'head' module: {self.name} cannot train with training.dann")
        return head

    def augment(
        self, x: torch.Tensor, batch: dict[str, torch.Tensor], aug: AugmentConfig, gen: torch.Generator
    ) -> torch.Tensor:
        """Training-batch augmentation of ``x`` (none by default)."""
        return x

    mixup: ClassVar[bool] = True  # whether mixup may blend this family's inputs

    def param_groups(self, net: nn.Module, cfg: TrainingConfig) -> list[dict[str, Any]] | None:
        """AdamW groups for ``net``, or None for the default (decay on weights, none on biases and norms)."""
        return None

    def fit(
        self,
        cfg: ExperimentConfig,
        data: FitData,
        run: RunDir,
        *,
        model: nn.Module,
        progress: bool,
        callbacks: Sequence[Any] = (),
        loggers: Sequence[Any] = (),
        fit_loop: FitLoop | None = None,
    ) -> Fitted:
        if fit_loop is None:
            raise TypeError(f"{self.name}: a neural family trains through the training layer's fit (fit_loop=)")
        return fit_loop(self, cfg, data, run, model=model, progress=progress, callbacks=callbacks, loggers=loggers)
