"""Model families: lookup, duplicate refusal, and for every registered family a tiny build -> batch -> train
step -> save -> reload round trip that must give the same logits; plus a model.json in the pre-family format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

from emoshift.config import ExperimentConfig, load_config
from emoshift.core.rundir import RunDir, RunError, write_model_json
from emoshift.corpora import Scan
from emoshift.corpora.base import Utterance
from emoshift.data.datasets import EmotionDataModule, Item
from emoshift.evaluation.inference import predict_waveform, raw_outputs
from emoshift.models import ModelSpec, family_of, get_spec, list_models, register_model
from emoshift.models.families import (
    CNNFamily,
    Family,
    FitData,
    NeuralFamily,
    get_family,
    list_families,
    register_family,
)
from emoshift.models.weights import build_from_info, load_model, save_weights

LABELS = ["angry", "happy", "sad"]
SR = 16_000
# One tiny config per family: a family registered without an entry here fails test_round_trip.
TINY: dict[str, list[str]] = {
    "cnn": ["model.name=resnet18", "model.width_mult=0.125", "features.n_mels=32", "features.crop_s=0.5"],
    "ssl-finetune": ["model.name=hubert", "model.preset=tiny", "model.layer_sum=true", "model.pooling=stats"],
    "ssl-frozen": ["model.name=hubert", "model.preset=tiny", "model.mode=frozen", "model.pooling=stats"],
    "acoustic": ["model.name=egemaps", "model.head=logreg"],
}


# ------------------------------------------------------------------------------------------------ lookup


def test_every_model_has_a_family_for_each_mode() -> None:
    for name in list_models():
        for mode in ("finetune", "frozen"):
            family = family_of(name, mode)
            assert family.input_kind == get_spec(name).input_kind
    assert family_of("resnet18", "frozen") is family_of("resnet18", "finetune") is get_family("cnn")
    assert family_of("hubert", "frozen").name == "ssl-frozen"
    assert family_of("ssl", "finetune").name == "ssl-finetune"


def test_config_asks_the_family() -> None:
    cfg = load_config(overrides=TINY["ssl-frozen"])
    family = family_of(cfg.model.name, cfg.model.mode)
    assert family is get_family("ssl-frozen")
    assert family.input_kind == "waveform"
    assert family.builder_kwargs(cfg.model)["mode"] == "frozen"
    assert "pretrained" not in family.builder_kwargs(cfg.model)  # hubert keeps its own default checkpoint
    cnn = load_config(overrides=TINY["cnn"]).model
    assert family_of(cnn.name, cnn.mode).builder_kwargs(cnn) == {
        "pretrained": None,
        "dropout": 0.2,
        "width_mult": 0.125,
        "speaker_norm": False,
        "domain_norm": False,
    }


def test_registry_refuses_a_duplicate_model_name() -> None:
    spec = get_spec("resnet18")
    with pytest.raises(ValueError, match="already registered"):
        register_model(spec)
    with pytest.raises(ValueError, match="already registered"):
        register_model(ModelSpec("hubert", "spectrogram", "emoshift.models.cnn_nets", "resnet18", "an impostor"))
    assert get_spec("hubert").input_kind == "waveform"  # the original is untouched


def test_family_registry_refuses_duplicates() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_family(CNNFamily())

    class AnotherCNN(CNNFamily):
        name = "cnn-2"

    with pytest.raises(ValueError, match="already does"):  # the spectrogram input is served already
        register_family(AnotherCNN())
    assert "cnn-2" not in list_families()


def test_unknown_family_names_the_choices() -> None:
    with pytest.raises(KeyError, match="ssl-frozen"):
        get_family("svm")


# ------------------------------------------------------------------------------------------------ round trip


def _corpus(root: Path) -> list[Utterance]:
    root.mkdir(parents=True)
    utts = []
    for i in range(6):
        rng = np.random.default_rng(i)
        t = np.arange(int((0.5 + 0.1 * i) * SR)) / SR
        wave = 0.3 * np.sin(2 * np.pi * (110 + 50 * i) * t) + 0.05 * rng.standard_normal(len(t))
        path = root / f"clip{i}.wav"
        sf.write(path, wave.astype(np.float32), SR)
        utts.append(
            Utterance(
                id=f"toy/clip{i}",
                path=str(path),
                corpus="toy",
                speaker=f"toy/{i % 3}",
                gender=None,
                emotion=LABELS[i % 3],
                native_label=LABELS[i % 3],
                duration_s=len(t) / SR,
            )
        )
    return utts


def _config(name: str, cache: Path) -> ExperimentConfig:
    return load_config(
        overrides=[*TINY[name], f"data.cache_dir={cache}", "training.batch_size=4", "training.max_batch_seconds=30"]
    )


def _info(cfg: ExperimentConfig, family: Family, model: Any) -> dict[str, Any]:
    return {
        **family.architecture_info(cfg, model),
        "input_kind": family.input_kind,
        "labels": LABELS,
        "features": cfg.features.model_dump(mode="json"),
    }


def _one_step(cfg: ExperimentConfig, family: NeuralFamily, model: torch.nn.Module, items: list[Item], stores: Any) -> None:
    """One training step on one batch, as the Lightning module takes it; it must change the weights."""
    dm = EmotionDataModule(
        prepare=lambda: family.datasets(cfg, items, items, stores),
        batch_size=cfg.training.batch_size,
        sampling="none",
        seed=0,
        max_batch_samples=family.max_batch_samples(cfg),
    )
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    net = family.train_net(model).train()
    x = family.augment(batch["x"], batch, cfg.training.augment, torch.Generator().manual_seed(0))
    loss = F.cross_entropy(family.forward(net, {**batch, "x": x}), batch["y"])
    groups = family.param_groups(net, cfg.training) or [{"params": [p for p in net.parameters() if p.requires_grad]}]
    opt = torch.optim.AdamW(groups, lr=1e-2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loss.backward()
    opt.step()
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items()), "the step trained nothing"
    model.eval()


@pytest.mark.parametrize("name", list_families())
def test_round_trip(name: str, tmp_path: Path) -> None:
    cfg = _config(name, tmp_path / "cache")
    family = family_of(cfg.model.name, cfg.model.mode)
    assert family.name == name
    utts = _corpus(tmp_path / "audio")
    items = [Item(u, LABELS.index(u.emotion), 0) for u in utts]
    torch.manual_seed(0)
    model = family.build(cfg, num_labels=len(LABELS))
    stores = family.prepare_stores(cfg, model, {"toy": Scan("toy", str(tmp_path), "six", utts)}, progress=False)
    run = RunDir.of(tmp_path / "run")
    if isinstance(family, NeuralFamily):
        _one_step(cfg, family, model, items, stores)
    else:  # a family with its own fit (the acoustic baselines: scikit-learn)
        model = family.fit(cfg, FitData(LABELS, items, items[:2], stores), run, model=model, progress=False).model

    # save, reload through model.json, and compare the inference logits
    family.save(model, run)
    write_model_json(run, _info(cfg, family, model))
    loaded, info = load_model(run.path)
    assert family_of(info.model, info.mode) is family
    kept_a, a, skipped = raw_outputs(model, info, utts, cache_dir=cfg.data.cache_dir, batch_size=4)
    kept_b, b, _ = raw_outputs(loaded, info, utts, cache_dir=cfg.data.cache_dir, batch_size=4)
    assert not skipped and [u.id for u in kept_a] == [u.id for u in kept_b] == [u.id for u in utts]
    assert a.shape == (len(utts), len(LABELS))
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    wave, sr = sf.read(utts[0].path, dtype="float32")
    pa, pb = predict_waveform(model, info, wave, sr), predict_waveform(loaded, info, wave, sr)
    assert list(pa) == LABELS
    np.testing.assert_allclose(list(pa.values()), list(pb.values()), rtol=0, atol=1e-5)
    assert abs(sum(pa.values()) - 1.0) < 1e-6


# ------------------------------------------------------------------------------------------------ old runs


class _OldWriter:
    """model.json exactly as train.py wrote it before the families (git show e8a81b5:src/emoshift/training/train.py):
    architecture keys, then input_kind, labels, label_policy, features, train_corpora, training_speakers,
    leaky_split, distill_teacher, architecture, config_fingerprint; ``format`` first (rundir.write_model_json)."""

    common: ClassVar[dict[str, Any]] = {
        "label_policy": "six",
        "train_corpora": ["ravdess"],
        "training_speakers": ["ravdess/01", "ravdess/02"],
        "leaky_split": False,
        "distill_teacher": None,
        "config_fingerprint": "0123456789abcdef",
    }

    @classmethod
    def cnn(cls, model: Any, features: dict[str, Any]) -> dict[str, Any]:
        return {
            "format": 1,
            "model": "resnet18",
            "dropout": 0.2,
            "backbone_config": model.backbone.config.to_dict(),
            "input_kind": "spectrogram",
            "labels": LABELS,
            "features": features,
            **cls.common,
            "architecture": "resnet18 x0.125 width on 32-mel log-mels, from scratch",
        }

    @classmethod
    def ssl(cls, model: Any, features: dict[str, Any]) -> dict[str, Any]:
        return {
            "format": 1,
            "model": "hubert",
            "dropout": 0.2,
            "encoder_config": model.encoder.config.to_dict(),
            "pooling": "stats",
            "layer_sum": False,
            "head_hidden": 256,
            "mode": "frozen",
            "pretrained": None,
            "preset": "tiny",
            "input_kind": "waveform",
            "labels": LABELS,
            "features": features,
            **cls.common,
            "architecture": "hubert (preset tiny), frozen, stats pooling",
        }


@pytest.mark.parametrize("kind", ["cnn", "ssl"])
def test_a_run_written_before_the_families_loads_and_predicts(kind: str, tmp_path: Path) -> None:
    from emoshift.models import get_model

    features = load_config(overrides=TINY["cnn"]).features.model_dump(mode="json")
    torch.manual_seed(0)
    if kind == "cnn":
        model = get_model("resnet18", num_labels=3, pretrained=None, dropout=0.2, width_mult=0.125)
        info = _OldWriter.cnn(model, features)
    else:
        model = get_model("hubert", num_labels=3, preset="tiny", pooling="stats", dropout=0.2, mode="frozen")
        info = _OldWriter.ssl(model, features)
    run = tmp_path / "old"
    run.mkdir()
    (run / "model.json").write_text(json.dumps(info, indent=2))
    save_weights(model, run / "model.safetensors")
    loaded, got = load_model(run)
    assert got.to_json() == json.loads(json.dumps(info))  # read as written, nothing added or dropped
    model.eval()
    wave = 0.1 * np.sin(np.arange(SR) / 7.0).astype(np.float32)
    pa, pb = predict_waveform(model, got, wave, SR), predict_waveform(loaded, got, wave, SR)
    np.testing.assert_allclose(list(pa.values()), list(pb.values()), rtol=0, atol=1e-6)


def test_a_model_json_naming_an_unknown_model_is_one_line() -> None:
    with pytest.raises(RunError, match="resnet19") as err:
        build_from_info({"model": "resnet19", "labels": LABELS})
    assert "\n" not in str(err.value)
    with pytest.raises(RunError, match="'model'"):
        build_from_info({"labels": LABELS})
