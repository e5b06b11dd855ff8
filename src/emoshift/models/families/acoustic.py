"""The acoustic family: ``egemaps`` / ``compare`` openSMILE functionals with a scikit-learn linear head.

The yardstick every deep model should beat, run through the same machinery (run directory, k-fold, evaluate,
predict, audit, compare, study). Its model is not a torch module: :class:`AcousticModel` holds the
:class:`~emoshift.models.acoustic.AcousticBaseline` (standardisation + ``svm`` or ``logreg`` head) and the
functionals config it reads.

- config: ``model.head`` (``svm``: calibrated LinearSVC, default; ``logreg``) and ``model.speaker_norm``
  (z-score each speaker's functionals with its own statistics, a standard cross-corpus trick; else a
  StandardScaler fitted on the training speakers) or ``model.domain_norm: corpus`` (each corpus's with its own;
  with both, each speaker's: after the corpus's they are the same); the waveform options (rate, trimming) are
  ``features.*``;
- stores: the per-corpus functionals cache (:class:`~emoshift.features.functionals.FunctionalCache`, under
  ``data.cache_dir/functionals``), computed once and shared by every fold;
- fit: closed form, no epochs: the validation speakers have no model to select, so the head is fitted on the
  training and validation speakers together (the test speakers are never seen);
- saving: every array the head needs in ``model.safetensors`` (safetensors.numpy), the rest in model.json
  under ``acoustic``; nothing is pickled, and a reloaded model gives the same probabilities;
- inference: logits are ``log(probabilities)`` (``-inf`` for a label the head never saw), so softmax gives the
  calibrated probabilities back exactly;
- task dimensional: the head is scikit-learn's ``Ridge`` on the same standardised functionals, every target at
  once (its coefficients in safetensors as well); its outputs are the ratings on ``data.target_range``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from emoshift.core.record import ModelRecord
from emoshift.models.families.base import Advance, Family, FitData, Fitted

if TYPE_CHECKING:
    from emoshift.config import ExperimentConfig, ModelConfig
    from emoshift.config.features import FeatureConfig
    from emoshift.core.rundir import RunDir
    from emoshift.corpora import Scan
    from emoshift.corpora.base import Skipped, Utterance
    from emoshift.data.datasets import Item
    from emoshift.features.functionals import FunctionalsConfig
    from emoshift.models.acoustic import AcousticBaseline


# Functionals describe a whole utterance (training used every clip whole): predict and serve score a clip up
# to this long whole, and longer audio in windows of this length.
SERVING_WINDOW_S = 8.0


@dataclass
class AcousticModel:
    """An acoustic baseline and the functionals it reads (what the family builds, fits, saves and loads)."""

    baseline: AcousticBaseline
    functionals: FunctionalsConfig

    def log_proba(
        self, x: np.ndarray, speakers: Sequence[str] | None, domains: Sequence[str] | None = None
    ) -> np.ndarray:
        """``log(predict_proba)`` ``(N, C)`` float64; -inf where the probability is 0."""
        with np.errstate(divide="ignore"):
            return np.log(self.baseline.predict_proba(x, speakers, domains=domains))

    def outputs(
        self, x: np.ndarray, speakers: Sequence[str] | None, domains: Sequence[str] | None = None
    ) -> np.ndarray:
        """What the family returns as logits: the ridge head's ratings ``(N, T)``, else log-probabilities;
        ``domains``: each row's corpus (a corpus-normalised head standardises each with its own statistics)."""
        if self.baseline.config.head == "ridge":
            return self.baseline.predict_values(x, speakers, domains=domains)
        return self.log_proba(x, speakers, domains)


def _build(
    feature_set: str,
    *,
    num_labels: int,
    head: str = "svm",
    speaker_norm: bool = False,
    domain_norm: bool = False,
    sample_rate: int = 16_000,
    trim_silence: bool = False,
    trim_top_db: float = 40.0,
) -> AcousticModel:
    from emoshift.features.functionals import FunctionalsConfig
    from emoshift.models.acoustic import AcousticBaseline, HeadConfig

    normalise = "speaker" if speaker_norm else "corpus" if domain_norm else "global"
    cfg = HeadConfig(head=head, normalise=normalise)  # type: ignore[arg-type]
    functionals = FunctionalsConfig(
        feature_set=feature_set,  # type: ignore[arg-type]
        sample_rate=sample_rate,
        trim_silence=trim_silence,
        trim_top_db=trim_top_db,
    )
    # labels: set by fit (the run's label order); num_labels is the registry's common argument
    return AcousticModel(AcousticBaseline(cfg, feature_set=feature_set), functionals)


def egemaps(*, num_labels: int, **kwargs: Any) -> AcousticModel:
    """eGeMAPSv02 functionals (88) + a linear head."""
    return _build("egemaps", num_labels=num_labels, **kwargs)


def compare(*, num_labels: int, **kwargs: Any) -> AcousticModel:
    """ComParE_2016 functionals (6,373) + a linear head."""
    return _build("compare", num_labels=num_labels, **kwargs)


class AcousticFamily(Family):
    name = "acoustic"
    input_kind = "functionals"
    corpus_norm = True
    corpus_norm_over = "functional"
    # closed form, no epochs: nothing of training/trainer applies, nor the neural models' options, nor the
    # log-mel settings (functionals read only features.sample_rate, trim_silence and trim_top_db)
    unused_keys = frozenset({
        "model.pretrained", "model.dropout", "model.width_mult", "model.mode", "model.preset", "model.pooling",
        "model.layer_sum", "model.head_hidden", "training", "trainer", "data.num_workers",
        *(f"features.{k}" for k in ("n_mels", "win_ms", "hop_ms", "n_fft", "f_min", "f_max", "power", "top_db",
                                    "crop_s")),
    })
    exportable = False
    not_exportable = (
        "its openSMILE functionals are computed by openSMILE's own binary, outside any network graph; "
        "emoshift predict and serve run it with --backend torch"
    )

    # -- config ---------------------------------------------------------------------------------------
    def builder_kwargs(self, m: ModelConfig) -> dict[str, Any]:
        return {"head": m.head, "speaker_norm": m.speaker_norm, "domain_norm": m.domain_norm == "corpus"}

    def check_config(self, cfg: ExperimentConfig) -> None:
        if cfg.training.stages:
            raise ValueError("training.stages (multi-stage fine-tuning) applies to SSL models (hubert, ssl) only")
        if cfg.training.distill is not None:
            raise ValueError(f"{cfg.model.name} is a scikit-learn head: it cannot learn from a teacher's logits")
        if cfg.training.dann is not None:
            raise ValueError(
                f"{cfg.model.name} is a scikit-learn head: training.dann (domain-adversarial training) needs a neural "
                "model whose gradients reach its embedding (cnn or ssl)"
            )
        if cfg.training.targets == "soft":
            raise ValueError(
                f"{cfg.model.name} is a scikit-learn head: it trains on hard labels only "
                "(training.targets: soft needs a neural model, e.g. cnn or ssl)"
            )

    def unused(self, cfg: ExperimentConfig) -> frozenset[str]:
        return self.unused_keys | ({"model.head"} if cfg.task == "dimensional" else set())  # ridge, always

    @staticmethod
    def head(cfg: ExperimentConfig) -> str:
        """The scikit-learn head: Ridge regression for a dimensional run, else ``model.head`` (a classifier)."""
        return "ridge" if cfg.task_kind.rated else cfg.model.head

    def describe(self, cfg: ExperimentConfig) -> str:
        from emoshift.features.functionals import FEATURE_SETS

        m = cfg.model
        set_name, dim = FEATURE_SETS[m.name]
        norm = "per-speaker" if m.speaker_norm else "per-corpus" if m.domain_norm == "corpus" else "training-speaker"
        return f"openSMILE {set_name} functionals ({dim:,}), {norm} standardisation, {self.head(cfg)} head"

    # -- model ----------------------------------------------------------------------------------------
    def build(self, cfg: ExperimentConfig, *, num_labels: int) -> Any:
        from emoshift.models import get_model

        f = cfg.features
        return get_model(
            cfg.model.name,
            num_labels=num_labels,
            **{**self.builder_kwargs(cfg.model), "head": self.head(cfg)},
            sample_rate=f.sample_rate,
            trim_silence=f.trim_silence,
            trim_top_db=f.trim_top_db,
        )

    def architecture_info(self, cfg: ExperimentConfig, model: AcousticModel) -> dict[str, Any]:
        _, meta = model.baseline.state()
        return {
            "model": cfg.model.name,
            "head": self.head(cfg),
            "speaker_norm": cfg.model.speaker_norm,
            "domain_norm": cfg.model.domain_norm,
            "functionals": model.functionals.model_dump(mode="json"),
            "acoustic": meta,
            "window_s": SERVING_WINDOW_S,
        }

    def rebuild(self, info: ModelRecord) -> AcousticModel:
        """The unfitted baseline model.json describes (its arrays come from :meth:`load`)."""
        from emoshift.features.functionals import FunctionalsConfig
        from emoshift.models.acoustic import AcousticBaseline, HeadConfig

        meta = info.acoustic or {}
        names = info.outputs  # the output columns
        baseline = AcousticBaseline(HeadConfig(**meta.get("config", {})), labels=names, feature_set=info.model)
        return AcousticModel(baseline, FunctionalsConfig.model_validate(info.functionals))

    def save(self, model: AcousticModel, run: RunDir) -> None:
        from safetensors.numpy import save

        from emoshift.core.io import atomic_write_bytes

        arrays, _ = model.baseline.state()  # the JSON half goes into model.json (architecture_info)
        atomic_write_bytes(run.weights, save(arrays))

    def load(self, run: RunDir, info: ModelRecord) -> AcousticModel:
        from safetensors.numpy import load_file

        from emoshift.core.rundir import RunError
        from emoshift.models.acoustic import AcousticBaseline, AcousticError

        if not run.weights.is_file():
            raise RunError(f"{run.path}: model.safetensors is missing")
        model = self.rebuild(info)
        try:
            model.baseline = AcousticBaseline.from_state(load_file(str(run.weights)), info.required("acoustic"))
        except (AcousticError, KeyError, TypeError) as e:
            raise RunError(f"{run.path}: the acoustic baseline cannot be loaded ({e})") from None
        return model

    # -- training -------------------------------------------------------------------------------------
    def prepare_stores(
        self, cfg: ExperimentConfig, model: AcousticModel, scans: dict[str, Scan], *, progress: bool,
        train: Sequence[Item] = (),
    ) -> dict[str, Any]:
        from emoshift.features.functionals import FunctionalCache

        cache = FunctionalCache(Path(cfg.data.cache_dir) / "functionals")
        return {
            name: cache.build(name, sc.utterances, model.functionals, progress=progress) for name, sc in scans.items()
        }

    def fit(
        self,
        cfg: ExperimentConfig,
        data: FitData,
        run: RunDir,
        *,
        model: AcousticModel,
        progress: bool,
        callbacks: Sequence[Any] = (),
        loggers: Sequence[Any] = (),
        fit_loop: Any = None,
    ) -> Fitted:
        items = [*data.train, *data.val]
        x = np.concatenate([data.stores[it.utt.corpus].matrix([it.utt.id]) for it in items])  # (N, D)
        speakers = [it.utt.speaker for it in items]
        domains = [it.utt.corpus for it in items]
        if cfg.task_kind.rated:  # ratings (N, T) on data.target_range
            y = np.array([it.target for it in items], dtype=np.float64)
            model.baseline.fit_values(x, y, speakers, targets=cfg.data.targets, domains=domains)
            return Fitted(model, epochs_run=0)
        model.baseline.labels = list(data.labels)
        model.baseline.fit(x, [data.labels[it.label] for it in items], speakers, domains=domains)
        return Fitted(model, epochs_run=0)

    # -- inference ------------------------------------------------------------------------------------
    def outputs(
        self,
        model: AcousticModel,
        info: ModelRecord,
        utterances: Sequence[Utterance],
        *,
        cache_dir: str,
        batch_size: int,
        device: torch.device,
        advance: Advance,
        progress: bool,
    ) -> tuple[list[Utterance], np.ndarray, list[Skipped]]:
        from emoshift.features.functionals import FunctionalCache

        cache = FunctionalCache(Path(cache_dir) / "functionals")
        by_corpus: dict[str, list[Utterance]] = {}
        for u in utterances:
            by_corpus.setdefault(u.corpus, []).append(u)
        kept: list[Utterance] = []
        skipped: list[Skipped] = []
        out: list[np.ndarray] = []
        for corpus, utts in by_corpus.items():
            store = cache.build(corpus, utts, model.functionals, progress=progress)
            skipped.extend(store.skipped)
            usable = [u for u in utts if u.id in store]
            if usable:  # per-speaker (per-corpus) normalisation sees all of a speaker's (corpus's) utterances at once
                x = store.matrix([u.id for u in usable])  # (N, D)
                out.append(model.outputs(x, [u.speaker for u in usable], [corpus] * len(usable)))
                kept.extend(usable)
            advance(len(utts))
        logits = np.concatenate(out) if out else np.zeros((0, info.num_outputs))
        return kept, logits, skipped

    def adapt_corpus_norm(
        self, model: AcousticModel, info: ModelRecord, utterances: Sequence[Utterance], *, cache_dir: str,
        progress: bool,
    ) -> tuple[Any, int]:
        """The scaler set to the target's functionals statistics (:func:`emoshift.features.domain_norm.row_moments`):
        what a clip of no named speaker or corpus is standardised with (predict, serve)."""
        from emoshift.features.domain_norm import row_moments
        from emoshift.features.functionals import FunctionalCache
        from emoshift.models.adaptation import AdaptationError

        cache = FunctionalCache(Path(cache_dir) / "functionals")
        rows: list[np.ndarray] = []
        for corpus in dict.fromkeys(u.corpus for u in utterances):
            utts = [u for u in utterances if u.corpus == corpus]
            store = cache.build(corpus, utts, model.functionals, progress=progress)
            if usable := [u.id for u in utts if u.id in store]:
                rows.append(store.matrix(usable))
        if not rows:
            raise AdaptationError("none of the target's audio could be read")
        target = row_moments(np.concatenate(rows))
        model.baseline.set_scaler(target.mean, target.std)
        return target, sum(len(r) for r in rows)

    def prepare_input(self, wave: np.ndarray, fcfg: FeatureConfig) -> torch.Tensor:
        """The waveform itself ``(1, S)``: :meth:`predict` computes the model's own functionals from it."""
        return torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))[None]

    def predict(self, model: AcousticModel, x: torch.Tensor) -> torch.Tensor:
        """Log-probabilities ``(B, C)`` (ratings ``(B, T)`` for a ridge head), float64, of waveforms ``(B, S)`` at
        the functionals' sample rate.

        One clip has no speaker statistics of its own: a speaker-normalised model uses the training ones.
        """
        from emoshift.features.functionals import extract

        feats = np.stack([extract(w, model.functionals) for w in x.cpu().numpy()])  # (B, D)
        return torch.from_numpy(model.outputs(feats, None))
