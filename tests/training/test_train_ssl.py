"""SSL encoders through the training engine: frozen embedding cache, multi-stage fine-tuning, distillation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from emoshift.config import ConfigError, load_config
from emoshift.models import CONFIG_CHECKS
from emoshift.models.weights import load_model
from emoshift.training.train import train
from tests.conftest import tiny_overrides

SSL = ["model.name=hubert", "model.preset=tiny", "training.epochs=2", "training.max_batch_seconds=30"]


def test_frozen_mode_trains_head_on_cache_and_predicts_from_waveforms(synth_tiny: Path, tmp_path: Path) -> None:
    sets = [*tiny_overrides(synth_tiny, tmp_path / "cache"), *SSL, "model.mode=frozen", "model.layer_sum=true",
            "model.pooling=stats"]
    run = train(load_config(overrides=sets), tmp_path / "run", progress=False)
    # the cache's content (its .lock names the last builder, so it changes on every build, and is no content)
    cache_files = sorted(p for p in (tmp_path / "cache" / "ssl").rglob("*") if p.name != ".lock")
    assert cache_files, "frozen mode builds an embedding cache"
    stamp = {p: p.stat().st_mtime_ns for p in cache_files if p.is_file()}
    m = json.loads((run / "metrics" / "ravdess.json").read_text())
    assert m["n"] > 0 and 0.0 <= m["uar"] <= 1.0
    # The saved model is the whole encoder + head: it predicts from waveforms without the cache.
    model, info = load_model(run)
    assert info.input_kind == "waveform" and info.mode == "frozen"
    with torch.no_grad():
        out = model(torch.randn(2, 16000), torch.ones(2, 16000, dtype=torch.long))
    assert out.shape == (2, len(info.labels))
    # A second run with the same encoder reuses the cache: nothing is rewritten.
    train(load_config(overrides=[*sets, "training.lr=0.001"]), tmp_path / "run2", progress=False)
    assert {p: p.stat().st_mtime_ns for p in cache_files if p.is_file()} == stamp


def test_multi_stage_finetune_changes_trainable_parameters(synth_tiny: Path, tmp_path: Path) -> None:
    import lightning as L

    seen: dict[int, int] = {}

    class Count(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):  # type: ignore[no-untyped-def]
            if batch_idx == 0:
                seen[trainer.current_epoch] = sum(
                    p.numel() for p in pl_module.model.parameters() if p.requires_grad
                )

    stages = "training.stages=[{epochs: 1, train: head}, {epochs: 1, train: top, top_k: 1}, {epochs: 1, train: all, layer_decay: 0.8}]"
    sets = [*tiny_overrides(synth_tiny, tmp_path / "cache"), *SSL, "training.epochs=3", stages]
    run = train(load_config(overrides=sets), tmp_path / "run", progress=False, callbacks=[Count()])
    assert seen[0] < seen[1] < seen[2], seen
    model, info = load_model(run)
    conv = [p for n, p in model.named_parameters() if "feature_extractor" in n]
    assert conv, "the conv feature encoder exists"
    assert (run / "done.json").is_file()


def test_stages_must_cover_the_epochs() -> None:
    with pytest.raises(ConfigError, match="stages"):
        load_config(overrides=["model.name=hubert", "model.preset=tiny", "training.epochs=5",
                               "training.stages=[{epochs: 1, train: head}]"])
    with pytest.raises(ConfigError, match="top_k"):
        load_config(overrides=["model.name=hubert", "model.preset=tiny", "training.epochs=1",
                               "training.stages=[{epochs: 1, train: top}]"])


def test_frozen_attentive_is_refused_with_a_reason() -> None:
    with pytest.raises(ConfigError, match="frame-level"):
        load_config(overrides=["model.name=hubert", "model.preset=tiny", "model.mode=frozen", "model.pooling=attentive"],
                    checks=CONFIG_CHECKS)


def test_distillation_end_to_end(synth_tiny: Path, tmp_path: Path) -> None:
    base = tiny_overrides(synth_tiny, tmp_path / "cache")
    teacher = train(load_config(overrides=[*base, "training.epochs=3"]), tmp_path / "teacher", progress=False)
    student_sets = [*base, "training.epochs=2", "model.width_mult=0.0625", f"training.distill.teacher={teacher}",
                    "training.distill.temperature=3", "training.distill.alpha=0.3"]
    student = train(load_config(overrides=student_sets), tmp_path / "student", progress=False)
    m = json.loads((student / "metrics" / "ravdess.json").read_text())
    assert m["distill_teacher"] == str(teacher)
    cached = list((teacher / "teacher_logits").glob("*.npy"))
    assert len(cached) == 1  # teacher logits computed once, cached beside the teacher


def test_distillation_refuses_a_teacher_with_other_labels(synth_tiny: Path, tmp_path: Path) -> None:
    from emoshift.core.rundir import RunError

    base = tiny_overrides(synth_tiny, tmp_path / "cache")
    teacher = train(load_config(overrides=[*base, "training.epochs=1", "data.labels=four"]), tmp_path / "t", progress=False)
    with pytest.raises(RunError, match="predicts"):
        train(load_config(overrides=[*base, "training.epochs=1", f"training.distill.teacher={teacher}"]),
              tmp_path / "s", progress=False)


def _wave(u, info, *, cached: bool = False) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """A clip as inference reads it (trimmed as features say), or as the embedding cache does (untrimmed)."""
    from emoshift.config.features import FeatureConfig
    from emoshift.core.audio import load_utterance

    f = FeatureConfig.model_validate(info.features)
    trim = f.trim_silence and not cached
    return torch.from_numpy(load_utterance(u, f.sample_rate, trim=trim, trim_top_db=f.trim_top_db))[None]


def _embeddings(model, info, utts, *, cached: bool = False) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Each clip's pooled per-layer embeddings run alone, by hand: ``(N, L+1, 2H)`` float64."""
    with torch.no_grad():
        return np.concatenate([model.pooled_layer_embeddings(_wave(u, info, cached=cached), None).double().numpy()
                               for u in utts])


def test_frozen_domain_norm_trains_and_scores_each_corpus_with_its_own_statistics(
    ssl_norm_run: Path, synth_tiny: Path
) -> None:
    import csv

    from emoshift.corpora import scan
    from emoshift.evaluation.inference import raw_outputs

    run = ssl_norm_run
    for corpus in ("ravdess", "crema-d"):
        m = json.loads((run / "metrics" / f"{corpus}.json").read_text())
        assert m["n"] > 0 and 0.0 <= m["uar"] <= 1.0
    model, info = load_model(run)
    assert info.corpus_normalised and info.mode == "frozen" and "standardised per corpus" in info.architecture
    # the fixed standardisation holds RAVDESS's statistics over its training utterances (one training corpus)
    with (run / "splits" / "ravdess.csv").open() as f:
        train_ids = {r["id"] for r in csv.DictReader(f) if r["split"] == "train"}
    ravdess = [u for u in scan("ravdess", str(synth_tiny / "ravdess")).utterances if u.id in train_ids]
    emb = _embeddings(model, info, ravdess, cached=True)  # what training read
    std = emb.std(axis=0)
    np.testing.assert_allclose(model.embed_norm.mean.numpy(), emb.mean(axis=0), atol=1e-4)
    np.testing.assert_allclose(model.embed_norm.std.numpy(), np.where(std < 1e-8, 1.0, std), atol=1e-4, rtol=1e-3)
    # a scored corpus: its embeddings standardised with the statistics of the utterances scored, each corpus its own
    crema = scan("crema-d", str(synth_tiny / "crema-d")).utterances[:6]
    both = [*crema, *ravdess[:4]]
    kept, logits, skipped = raw_outputs(model, info, both, cache_dir=str(run / "unused-cache"), batch_size=4)
    assert not skipped and [u.id for u in kept] == [u.id for u in both]
    head = model.frozen_head().eval()
    for part, rows in ((crema, slice(0, 6)), (ravdess[:4], slice(6, 10))):
        e = _embeddings(model, info, part)
        s = e.std(axis=0)
        z = (e - e.mean(axis=0)) / np.where(s < 1e-8, 1.0, s)
        with torch.no_grad():
            by_hand = head(torch.from_numpy(z.astype(np.float32))).numpy()
        np.testing.assert_allclose(logits[rows], by_hand, atol=1e-3)
    with torch.no_grad():  # a clip of unknown origin: the statistics the model holds, not the corpus's
        alone = model(_wave(crema[0], info)).numpy()
    assert not np.allclose(alone, logits[:1], atol=1e-3)


def test_finetune_domain_norm_is_refused_in_one_line() -> None:
    with pytest.raises(ConfigError, match="model.mode=frozen") as e:
        load_config(overrides=["model.name=hubert", "model.preset=tiny", "model.mode=finetune",
                               "model.domain_norm=corpus"], checks=CONFIG_CHECKS)
    assert "\n" not in str(e.value).strip()


def test_corpus_norm_adaptation_needs_a_frozen_head_trained_with_domain_norm() -> None:
    from emoshift.core.record import ModelRecord
    from emoshift.models.adaptation import AdaptationError
    from emoshift.models.families import get_family

    def record(mode: str, norm: str) -> ModelRecord:
        return ModelRecord.parse({"model": "hubert", "mode": mode, "labels": ["a", "b"], "domain_norm": norm})

    get_family("ssl-frozen").check_adaptation(record("frozen", "corpus"), "corpus-norm")  # takes it
    with pytest.raises(AdaptationError, match="retrain with --set model.domain_norm=corpus"):
        get_family("ssl-frozen").check_adaptation(record("frozen", "none"), "corpus-norm")
    with pytest.raises(AdaptationError, match="frozen SSL heads"):
        get_family("ssl-finetune").check_adaptation(record("finetune", "none"), "corpus-norm")
    with pytest.raises(AdaptationError, match="no batch norm"):
        get_family("ssl-frozen").check_adaptation(record("frozen", "corpus"), "adabn")
