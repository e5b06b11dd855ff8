"""Acoustic baselines: openSMILE functionals + a scikit-learn linear head (``svm``, ``logreg``, or ``ridge``
for dimensional ratings).

The yardstick every deep model should beat: eGeMAPS (88 functionals) or ComParE (6,373) per utterance
(:mod:`emoshift.features.functionals`), standardised on the training speakers, then

- ``svm``: ``LinearSVC(class_weight="balanced")`` inside ``CalibratedClassifierCV(method="sigmoid")``, the
  calibration folds grouped by speaker (Platt scaling is fitted on speakers the SVM did not see);
- ``logreg``: multinomial ``LogisticRegression(class_weight="balanced")``;
- ``ridge`` (dimensional emotion): ``Ridge(alpha)`` regressing every target at once; its ``coef_`` ``(T, D)``
  and ``intercept_`` ``(T,)`` are stored, so :meth:`AcousticBaseline.predict_values` equals ``Ridge.predict``.

Standardisation is ``global`` (``StandardScaler`` fitted on the training features), ``speaker`` (each
speaker's features z-scored with that speaker's own mean and std, the standard cross-corpus trick: it removes
voice and channel offsets) or ``corpus`` (each corpus's features z-scored with that corpus's own statistics,
:mod:`emoshift.features.domain_norm`; the scaler then holds the training corpora's pooled statistics). At
inference a speaker- (corpus-) normalised model normalises each new speaker (corpus) with its own statistics
when speaker ids (corpus names, ``domains``) are given, else falls back to the scaler's statistics; ``emoshift
adapt --method corpus-norm`` sets those to a target corpus's (:meth:`AcousticBaseline.set_scaler`).

Storage is exact and pickle-free: every number predict_proba needs is an array in safetensors, the rest JSON.
For ``svm`` that is, per calibration fold, the fold's LinearSVC ``coef_``/``intercept_`` and its per-class
sigmoid calibrators ``a``/``b`` (``p = expit(-(a * decision + b))``, normalised over classes as scikit-learn
does, then averaged over folds): :meth:`AcousticBaseline.predict_proba` recomputes scikit-learn's
``CalibratedClassifierCV.predict_proba`` from those arrays with numpy (the tests check equality to 1e-9), so a
reloaded model gives identical probabilities and loading never needs scikit-learn objects.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.special import expit, softmax

from emoshift.core.errors import EmoshiftError
from emoshift.core.io import atomic_write_bytes, atomic_write_json

FORMAT_VERSION = 1
KIND = "emoshift-acoustic-baseline"
HEADS: tuple[str, ...] = ("svm", "logreg")
_STD_FLOOR = 1e-8  # a feature constant within one speaker is centred, not divided by ~0


class AcousticError(EmoshiftError, ValueError):
    """An acoustic baseline cannot be fitted, used or loaded as asked (message is one line, for the user)."""


class HeadConfig(BaseModel):
    """The linear head and its standardisation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    head: Literal["svm", "logreg", "ridge"] = Field(
        default="svm", description="svm: calibrated LinearSVC; logreg; ridge: Ridge regression (dimensional)"
    )
    normalise: Literal["global", "speaker", "corpus"] = Field(
        default="global",
        description="global: StandardScaler on training speakers; speaker: per-speaker z-score; corpus: per-corpus",
    )
    C: float = Field(default=1.0, gt=0, description="inverse regularisation strength")
    alpha: float = Field(default=1.0, gt=0, description="ridge: L2 regularisation strength")
    max_iter: int = Field(default=10_000, ge=10)
    calibration_folds: int = Field(default=3, ge=2, description="svm: speaker-grouped Platt-scaling folds")
    seed: int = 0


@dataclass
class _Params:
    """Everything predict_proba needs, as float64/int64 arrays."""

    mean: np.ndarray  # (D,) training mean (StandardScaler.mean_)
    scale: np.ndarray  # (D,) training scale (StandardScaler.scale_)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # head arrays, names as in safetensors
    n_folds: int = 0  # svm: calibrated classifiers


class AcousticBaseline:
    """``fit(X, y, speakers)`` / ``predict_proba(X, speakers=None)`` / ``save(dir)`` / ``load(dir)``.

    ``X``: ``(N, D)`` functionals; ``y``: label strings; ``speakers``: one id per row. ``labels`` fixes the
    column order of ``predict_proba`` (default: the sorted training labels); a label absent from training gets
    probability 0.
    """

    def __init__(
        self,
        config: HeadConfig | None = None,
        *,
        labels: Sequence[str] | None = None,
        feature_set: str = "egemaps",
    ) -> None:
        self.config = config or HeadConfig()
        self.labels = list(labels) if labels is not None else None
        self.feature_set = feature_set
        self.classes: list[str] = []  # labels seen in training (sorted): the columns of the fitted head
        self._params: _Params | None = None
        self.fit_info: dict[str, Any] = {}
        self._estimator: Any = None  # the fitted scikit-learn estimator (not saved; kept for checks)

    # ---------------------------------------------------------------------------------------------- fit

    def fit(
        self, X: np.ndarray, y: Sequence[str], speakers: Sequence[str], *, domains: Sequence[str] | None = None
    ) -> AcousticBaseline:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.preprocessing import StandardScaler

        x = _check_matrix(X)
        y_arr = np.asarray([str(v) for v in y])
        spk = np.asarray([str(s) for s in speakers])
        if len(y_arr) != len(x) or len(spk) != len(x):
            raise AcousticError(f"X has {len(x)} rows but y has {len(y_arr)} and speakers {len(spk)}")
        if self.config.head == "ridge":
            raise AcousticError("the ridge head regresses ratings: use fit_values")
        self.classes = sorted(set(y_arr.tolist()))
        if len(self.classes) < 2:
            raise AcousticError(f"a classifier needs at least two labels in training, got {self.classes}")
        if self.labels is None:
            self.labels = list(self.classes)
        unknown = [c for c in self.classes if c not in self.labels]
        if unknown:
            raise AcousticError(f"training label(s) {unknown} are not among the model's labels {self.labels}")
        self._params = self._scaler(StandardScaler().fit(x), x, domains)
        z = self.standardise(x, spk.tolist(), domains=domains)  # (N, D)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            if self.config.head == "svm":
                self._fit_svm(z, y_arr, spk)
            else:
                self._fit_logreg(z, y_arr)
        self.fit_info = {
            "n": len(x),
            "speakers": len(set(spk.tolist())),
            "converged": not any(issubclass(w.category, ConvergenceWarning) for w in caught),
        }
        return self

    def fit_values(
        self, X: np.ndarray, Y: np.ndarray, speakers: Sequence[str], *, targets: Sequence[str],
        domains: Sequence[str] | None = None,
    ) -> AcousticBaseline:
        """The ``ridge`` head: Ridge regression of ``Y`` ``(N, T)`` (dimensional ratings, ``targets`` in column
        order) on the standardised functionals; :meth:`predict_values` gives ``(N, T)`` back."""
        from sklearn.linear_model import Ridge
        from sklearn.preprocessing import StandardScaler

        if self.config.head != "ridge":
            raise AcousticError(f"fit_values needs the ridge head, not {self.config.head!r}")
        x = _check_matrix(X)
        y = np.asarray(Y, dtype=np.float64)
        if y.shape != (len(x), len(targets)) or not np.all(np.isfinite(y)):
            raise AcousticError(f"Y must be a finite ({len(x)}, {len(targets)}) matrix of ratings")
        spk = [str(v) for v in speakers]
        if len(spk) != len(x):
            raise AcousticError(f"X has {len(x)} rows but speakers has {len(spk)}")
        self.labels = self.classes = list(targets)
        self._params = self._scaler(StandardScaler().fit(x), x, domains)
        est = Ridge(alpha=self.config.alpha).fit(self.standardise(x, spk, domains=domains), y)
        self._params.arrays["ridge.coef"] = np.atleast_2d(np.asarray(est.coef_, dtype=np.float64))  # (T, D)
        self._params.arrays["ridge.intercept"] = np.atleast_1d(np.asarray(est.intercept_, dtype=np.float64))
        self._estimator = est
        self.fit_info = {"n": len(x), "speakers": len(set(spk)), "converged": True}
        return self

    def predict_values(
        self, X: np.ndarray, speakers: Sequence[str] | None = None, *, domains: Sequence[str] | None = None
    ) -> np.ndarray:
        """The ridge head's outputs ``(N, T)`` (float64), columns in ``self.labels`` (target) order."""
        if self.config.head != "ridge":
            raise AcousticError(f"predict_values needs the ridge head, not {self.config.head!r}")
        arr = self._require().arrays
        return self.standardise(X, speakers, domains=domains) @ arr["ridge.coef"].T + arr["ridge.intercept"]  # type: ignore[no-any-return]

    def _fit_svm(self, z: np.ndarray, y: np.ndarray, spk: np.ndarray) -> None:
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
        from sklearn.svm import LinearSVC

        cfg = self.config
        n_speakers = len(set(spk.tolist()))
        if n_speakers >= 2:  # Platt scaling on held-out speakers
            splitter: Any = StratifiedGroupKFold(
                min(cfg.calibration_folds, n_speakers), shuffle=True, random_state=cfg.seed
            )
            cv: Any = list(splitter.split(z, y, groups=spk))
        else:
            cv = list(StratifiedKFold(cfg.calibration_folds, shuffle=True, random_state=cfg.seed).split(z, y))
        svm = LinearSVC(C=cfg.C, class_weight="balanced", max_iter=cfg.max_iter, random_state=cfg.seed)
        est = CalibratedClassifierCV(svm, method="sigmoid", cv=cv, ensemble=True).fit(z, y)
        assert self._params is not None
        classes = [str(c) for c in est.classes_]
        for i, cc in enumerate(est.calibrated_classifiers_):
            # Mirror _CalibratedClassifier.predict_proba: zip(class indices, decision columns, calibrators),
            # the indices shifted by one when the whole problem is binary (its one column is classes_[1]).
            pos = [classes.index(str(c)) + (1 if len(classes) == 2 else 0) for c in cc.estimator.classes_]
            coef = np.atleast_2d(np.asarray(cc.estimator.coef_, dtype=np.float64))  # (K_i, D)
            n = min(len(pos), coef.shape[0], len(cc.calibrators))
            arrays = self._params.arrays
            arrays[f"svm.{i}.coef"] = coef[:n]
            arrays[f"svm.{i}.intercept"] = np.asarray(cc.estimator.intercept_, dtype=np.float64)[:n]  # (K_i,)
            arrays[f"svm.{i}.a"] = np.array([c.a_ for c in cc.calibrators[:n]], dtype=np.float64)
            arrays[f"svm.{i}.b"] = np.array([c.b_ for c in cc.calibrators[:n]], dtype=np.float64)
            arrays[f"svm.{i}.classes"] = np.array(pos[:n], dtype=np.int64)
        self._params.n_folds = len(est.calibrated_classifiers_)
        self._estimator = est

    def _fit_logreg(self, z: np.ndarray, y: np.ndarray) -> None:
        from sklearn.linear_model import LogisticRegression

        cfg = self.config
        est = LogisticRegression(C=cfg.C, class_weight="balanced", max_iter=cfg.max_iter).fit(z, y)
        assert self._params is not None
        self._params.arrays["logreg.coef"] = np.asarray(est.coef_, dtype=np.float64)  # (K or 1, D)
        self._params.arrays["logreg.intercept"] = np.asarray(est.intercept_, dtype=np.float64)
        self._estimator = est

    # ---------------------------------------------------------------------------------------------- use

    def standardise(
        self, X: np.ndarray, speakers: Sequence[str] | None = None, *, domains: Sequence[str] | None = None
    ) -> np.ndarray:
        """The head's input ``(N, D)`` float64: per-speaker z-scores (``speaker`` mode, speakers given),
        per-corpus z-scores (``corpus`` mode, each row's corpus in ``domains``: its statistics over these rows),
        else the scaler's ``(X - mean) / scale``."""
        params = self._require()
        x = _check_matrix(X, params.mean.shape[0])
        if self.config.normalise == "speaker" and speakers is not None:
            if len(speakers) != len(x):
                raise AcousticError(f"X has {len(x)} rows but speakers has {len(speakers)}")
            return _speaker_zscore(x, np.asarray([str(s) for s in speakers]))
        if self.config.normalise == "corpus" and domains is not None:
            if len(domains) != len(x):
                raise AcousticError(f"X has {len(x)} rows but domains has {len(domains)}")
            return _corpus_zscore(x, np.asarray([str(d) for d in domains]))
        z = x - params.mean
        z /= params.scale
        return z

    def predict_proba(
        self, X: np.ndarray, speakers: Sequence[str] | None = None, *, domains: Sequence[str] | None = None
    ) -> np.ndarray:
        """``(N, len(labels))`` probabilities, columns in ``self.labels`` order."""
        if self.config.head == "ridge":
            raise AcousticError("a ridge head predicts values (predict_values), not class probabilities")
        z = self.standardise(X, speakers, domains=domains)
        proba = self._svm_proba(z) if self.config.head == "svm" else self._logreg_proba(z)  # (N, C)
        assert self.labels is not None
        out = np.zeros((len(z), len(self.labels)), dtype=np.float64)
        out[:, [self.labels.index(c) for c in self.classes]] = proba
        return out

    def predict(self, X: np.ndarray, speakers: Sequence[str] | None = None) -> list[str]:
        assert self.labels is not None
        return [self.labels[i] for i in self.predict_proba(X, speakers).argmax(axis=1)]

    def _svm_proba(self, z: np.ndarray) -> np.ndarray:
        """scikit-learn's CalibratedClassifierCV.predict_proba (ensemble, sigmoid), from the stored arrays."""
        params = self._require()
        n_classes = len(self.classes)
        mean = np.zeros((len(z), n_classes))
        for i in range(params.n_folds):
            arr = params.arrays
            decision = z @ arr[f"svm.{i}.coef"].T + arr[f"svm.{i}.intercept"]  # (N, K_i)
            proba = np.zeros((len(z), n_classes))
            for col, cls in enumerate(arr[f"svm.{i}.classes"]):
                proba[:, cls] = expit(-(arr[f"svm.{i}.a"][col] * decision[:, col] + arr[f"svm.{i}.b"][col]))
            if n_classes == 2:
                proba[:, 0] = 1.0 - proba[:, 1]
            else:
                total = proba.sum(axis=1)[:, None]
                proba = np.divide(proba, total, out=np.full_like(proba, 1 / n_classes), where=total != 0)
            proba[(proba > 1.0) & (proba <= 1.0 + 1e-5)] = 1.0
            mean += proba
        return mean / params.n_folds

    def _logreg_proba(self, z: np.ndarray) -> np.ndarray:
        arr = self._require().arrays
        decision = z @ arr["logreg.coef"].T + arr["logreg.intercept"]  # (N, K) or (N, 1) when binary
        if decision.shape[1] == 1:
            p = expit(decision[:, 0])
            return np.stack([1.0 - p, p], axis=1)
        return softmax(decision, axis=1)

    def _scaler(self, scaler: Any, x: np.ndarray, domains: Sequence[str] | None) -> _Params:
        """The fitted StandardScaler's statistics; in ``corpus`` mode the training corpora's pooled ones (each
        corpus weighing the same), what rows of no named corpus are standardised with."""
        if self.config.normalise != "corpus":
            return _Params(mean=scaler.mean_.astype(np.float64), scale=scaler.scale_.astype(np.float64))
        from emoshift.features.domain_norm import CorpusStats, row_moments

        if domains is None or len(domains) != len(x):
            raise AcousticError("a corpus-normalised head needs each training row's corpus (domains)")
        names = np.asarray([str(d) for d in domains])
        stats = CorpusStats("functional")
        for d in np.unique(names):
            stats.add(str(d), row_moments(x[names == d]), int((names == d).sum()))
        fallback = stats.pooled()
        return _Params(mean=fallback.mean, scale=fallback.std)

    def set_scaler(self, mean: np.ndarray, scale: np.ndarray) -> None:
        """Replace the scaler's statistics (what rows of no named speaker or corpus are standardised with): the
        acoustic baseline's ``emoshift adapt --method corpus-norm``."""
        params = self._require()
        if mean.shape != params.mean.shape or scale.shape != params.scale.shape:
            raise AcousticError(f"statistics of shape {mean.shape} for a head on {params.mean.shape[0]} features")
        params.mean = np.asarray(mean, dtype=np.float64)
        params.scale = np.asarray(scale, dtype=np.float64)

    def _require(self) -> _Params:
        if self._params is None:
            raise AcousticError("the acoustic baseline is not fitted (call fit or load first)")
        return self._params

    # ---------------------------------------------------------------------------------------------- storage

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(arrays for safetensors, JSON-able description): everything :meth:`from_state` needs."""
        params = self._require()
        arrays = {"scaler.mean": params.mean, "scaler.scale": params.scale, **params.arrays}
        meta = {
            "format": FORMAT_VERSION,
            "kind": KIND,
            "feature_set": self.feature_set,
            "n_features": int(params.mean.shape[0]),
            "config": self.config.model_dump(),
            "labels": self.labels,
            "classes": self.classes,
            "n_folds": params.n_folds,
            "fit_info": self.fit_info,
        }
        return {k: np.ascontiguousarray(v) for k, v in arrays.items()}, meta

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> AcousticBaseline:
        if meta.get("kind") != KIND or meta.get("format") != FORMAT_VERSION:
            raise AcousticError(f"not an emoshift acoustic baseline (format {meta.get('format')!r})")
        model = cls(HeadConfig(**meta["config"]), labels=meta["labels"], feature_set=meta["feature_set"])
        model.classes = list(meta["classes"])
        head = {k: v for k, v in arrays.items() if not k.startswith("scaler.")}
        try:
            model._params = _Params(
                mean=arrays["scaler.mean"],
                scale=arrays["scaler.scale"],
                arrays=head,
                n_folds=int(meta["n_folds"]),
            )
        except KeyError as e:
            raise AcousticError(f"acoustic baseline weights lack {e.args[0]}") from None
        model.fit_info = dict(meta.get("fit_info") or {})
        return model

    def save(self, directory: str | os.PathLike[str], *, stem: str = "acoustic") -> Path:
        """Write ``<stem>.safetensors`` (arrays) and ``<stem>.json`` (the rest) into ``directory``, atomically."""
        from safetensors.numpy import save

        arrays, meta = self.state()
        out = Path(directory)
        atomic_write_bytes(out / f"{stem}.safetensors", save(arrays))
        atomic_write_json(out / f"{stem}.json", meta)
        return out

    @classmethod
    def load(cls, directory: str | os.PathLike[str], *, stem: str = "acoustic") -> AcousticBaseline:
        from safetensors.numpy import load_file

        folder = Path(directory)
        weights, info = folder / f"{stem}.safetensors", folder / f"{stem}.json"
        for p in (weights, info):
            if not p.is_file():
                raise AcousticError(f"{p} not found")
        try:
            meta = json.loads(info.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise AcousticError(f"{info} is not valid JSON: {e.msg} (line {e.lineno})") from None
        return cls.from_state(load_file(str(weights)), meta)


# --------------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------------


def _check_matrix(X: np.ndarray, dim: int | None = None) -> np.ndarray:
    x = np.asarray(X, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise AcousticError(f"features must be a non-empty (N, D) matrix, got shape {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise AcousticError(f"features have {x.shape[1]} columns but the model was fitted on {dim}")
    if not np.all(np.isfinite(x)):
        raise AcousticError("features contain NaN or infinite values")
    return x


def _corpus_zscore(x: np.ndarray, domains: np.ndarray) -> np.ndarray:
    """Each corpus's rows z-scored with that corpus's statistics over them (:func:`emoshift.features.domain_norm.
    row_moments`): ``(N, D)`` float64."""
    from emoshift.features.domain_norm import row_moments

    out = np.empty_like(x)
    for d in np.unique(domains):
        rows = domains == d
        m = row_moments(x[rows])
        out[rows] = (x[rows] - m.mean) / m.std
    return out


def _speaker_zscore(x: np.ndarray, speakers: np.ndarray) -> np.ndarray:
    """Each speaker's rows z-scored with that speaker's mean and std (ddof 0): ``(N, D)`` float64."""
    out = np.empty_like(x)
    for s in np.unique(speakers):
        rows = speakers == s
        block = x[rows]
        std = block.std(axis=0)
        out[rows] = (block - block.mean(axis=0)) / np.where(std < _STD_FLOOR, 1.0, std)
    return out
