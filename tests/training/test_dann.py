"""Domain-adversarial training (training.dann, data.unlabelled): the gradient reversal, its schedule, the refusals,
and one tiny run (RAVDESS labelled, CREMA-D's audio unlabelled; interrupted after epoch 1 and resumed) whose
unlabelled labels are never read (instrumented), whose log shows the corpus classifier, and whose saved and
exported model holds no trace of it."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch

from emoshift.config import ConfigError, load_config
from emoshift.config.dann import DannConfig
from emoshift.core.io import read_csv
from emoshift.corpora.base import Scan, Utterance
from emoshift.models import CONFIG_CHECKS
from emoshift.training.adversary import DOMAIN_COLUMNS, reverse_gradient
from tests.conftest import tiny_overrides

LABEL_FIELDS = frozenset({"emotion", "native_label", "intensity", "arousal", "valence", "dominance", "agreement",
                          "votes"})


def test_reversal_is_the_identity_forward_and_flips_and_scales_the_gradient() -> None:
    x = torch.randn(4, 3, requires_grad=True)
    w = torch.randn(4, 3)
    y = reverse_gradient(x, 0.25)
    assert torch.equal(y, x)
    (y * w).sum().backward()
    assert torch.allclose(x.grad, -0.25 * w)  # type: ignore[arg-type]
    x.grad = None
    (reverse_gradient(x, 2.0) * w).sum().backward()
    assert torch.allclose(x.grad, -2.0 * w)  # type: ignore[arg-type]


def test_schedule_values() -> None:
    ganin = DannConfig(weight=0.5)
    assert ganin.schedule == "ganin" and ganin.reversal(0.0) == 0.0
    for p in (0.1, 0.5, 1.0):  # Ganin et al. (2015): 2 / (1 + exp(-10 p)) - 1, times the weight
        assert ganin.reversal(p) == pytest.approx(0.5 * (2 / (1 + math.exp(-10 * p)) - 1))
    assert ganin.reversal(0.1) < ganin.reversal(0.5) < ganin.reversal(1.0) < 0.5
    assert ganin.reversal(2.0) == ganin.reversal(1.0)  # p is clipped to [0, 1]
    assert DannConfig(weight=0.3, schedule="constant").reversal(0.0) == 0.3


@pytest.mark.parametrize(("sets", "says"), [
    (["training.dann={weight: 0.3}"], "at least two domains"),
    (["data.unlabelled={crema-d: /x}"], "data.unlabelled is read by domain-adversarial training only"),
    (["training.dann={weight: 0.3}", "data.corpora=[ravdess, crema-d]", "training.augment.mixup_alpha=0.2"],
     "a mixed clip belongs to no one corpus"),
    (["training.dann={weight: 0.3}", "data.unlabelled={ravdess: /x}"], "a training corpus"),
    (["training.dann={weight: 0}", "data.unlabelled={crema-d: /x}"], "greater than 0"),
    (["model.name=egemaps", "training.dann={weight: 0.3}", "data.unlabelled={crema-d: /x}"], "scikit-learn head"),
])
def test_refusals_in_one_line(sets: list[str], says: str) -> None:
    with pytest.raises(ConfigError, match=says) as info:
        load_config(overrides=sets, checks=CONFIG_CHECKS)
    assert "\n" not in str(info.value)


def test_two_corpora_suffice_and_the_dimensional_task_is_accepted() -> None:
    cfg = load_config(overrides=["training.dann={weight: 0.3, schedule: constant}", "data.corpora=[ravdess, crema-d]",
                                 "task=dimensional", "data.targets=[arousal]"], checks=CONFIG_CHECKS)
    assert cfg.training.dann == DannConfig(weight=0.3, schedule="constant")


# ------------------------------------------------------------------------------------------------ a run


class Poisoned(Utterance):
    """An utterance whose label fields must never be read: each read is recorded (and fails the read)."""

    reads: list[str] = []

    def __getattribute__(self, name: str) -> Any:
        if name in LABEL_FIELDS:
            Poisoned.reads.append(name)
            raise AssertionError(f"read {name!r} of an unlabelled utterance")
        return object.__getattribute__(self, name)


class _TermAt(L.Callback):
    """SIGTERM at the first validation batch of the second epoch: the run keeps epoch 1 and stops."""

    def on_validation_batch_end(self, trainer, module, outputs, batch, batch_idx, dataloader_idx=0):  # type: ignore[no-untyped-def]
        if trainer.current_epoch == 1 and batch_idx == 0:
            os.kill(os.getpid(), signal.SIGTERM)


@pytest.fixture(scope="module")
def dann_run(synth_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    import emoshift.corpora.unlabelled as unlabelled
    from emoshift.core.errors import TrainingInterrupted
    from emoshift.training.train import train

    tmp = tmp_path_factory.mktemp("dann")
    real = unlabelled.scan_source
    seen = {"scans": 0}

    def poisoned(name: str, root: Any, labels: str, **options: Any) -> Scan:  # labels under the "native" policy
        sc = real(name, root, labels, **options)
        seen["scans"] += 1
        fields = [f.name for f in dataclasses.fields(Utterance)]
        sc.utterances = [Poisoned(**{f: getattr(u, f) for f in fields}) for u in sc.utterances]
        return sc

    cfg = load_config(overrides=[*tiny_overrides(synth_tiny, tmp / "cache"), "training.epochs=2",
                                 "training.dann={weight: 0.5}", f"data.unlabelled={{crema-d: {synth_tiny / 'crema-d'}}}"])
    Poisoned.reads.clear()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(unlabelled, "scan_source", poisoned)
        with pytest.raises(TrainingInterrupted):
            train(cfg, tmp / "run", progress=False, callbacks=[_TermAt()])
        held = torch.load(tmp / "run" / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
        run = train(cfg, tmp / "run", progress=False)  # resumes from epoch 1, the corpus classifier with it
    return run, {"scans": seen["scans"], "reads": list(Poisoned.reads), "ckpt_keys": list(held["state_dict"]),
                 "cfg": cfg}


def test_unlabelled_labels_are_never_read(dann_run: tuple[Path, dict[str, Any]]) -> None:
    _, seen = dann_run
    assert seen["scans"] == 2 and seen["reads"] == []  # the poisoned scan fed both runs; no label field was read


def test_log_shows_the_corpus_classifier_and_the_record_says_dann(dann_run: tuple[Path, dict[str, Any]]) -> None:
    run, _ = dann_run
    rows = read_csv(run / "log.csv")
    assert [r["epoch"] for r in rows] == ["1", "2"] and set(DOMAIN_COLUMNS) <= set(rows[0])
    for r in rows:
        assert float(r["domain_loss"]) > 0 and 0 <= float(r["domain_accuracy"]) <= 1
    weights = [float(r["domain_weight"]) for r in rows]
    assert 0 < weights[0] < weights[1] <= 0.5  # Ganin's ramp towards the weight
    info = json.loads((run / "model.json").read_text())
    assert info["dann"]["weight"] == 0.5 and info["dann"]["schedule"] == "ganin"
    assert info["dann"]["domains"] == ["ravdess", "crema-d"] and info["dann"]["unlabelled"]["crema-d"] > 0
    assert "Domain-adversarial training (DANN)" in (run / "README.md").read_text() and "crema-d" in info["dann"]["domains"]


def test_the_checkpoint_holds_the_corpus_classifier_and_the_saved_model_does_not(
    dann_run: tuple[Path, dict[str, Any]],
) -> None:
    from safetensors import safe_open

    from emoshift.models import family_of

    run, seen = dann_run
    assert any(k.startswith("adversary.") for k in seen["ckpt_keys"])  # what resume restored
    cfg = seen["cfg"]
    fresh = family_of(cfg.model.name).build(cfg, num_labels=len(json.loads((run / "model.json").read_text())["labels"]))
    with safe_open(str(run / "model.safetensors"), "pt") as f:
        assert set(f.keys()) == set(fresh.state_dict())  # the emotion net, exactly


@pytest.mark.slow
def test_the_exported_graph_holds_no_corpus_classifier(dann_run: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    import onnx

    from emoshift.deploy.export import export_runs

    run, _ = dann_run
    report = export_runs([run], tmp_path / "model.onnx", max_files=1)
    assert report["parity"]["ok"] and report["outputs"] == ["logits", "probabilities"]
    shapes = {tuple(t.dims) for t in onnx.load(str(tmp_path / "model.onnx")).graph.initializer}
    from safetensors import safe_open

    with safe_open(str(run / "model.safetensors"), "pt") as f:
        dim = f.get_slice("head.weight").get_shape()[1]  # the pooled embedding's size
    assert not shapes & {(128, dim), (dim, 128), (2, 128), (128, 2)}  # the corpus classifier's weights


# ------------------------------------------------------------------------------------------------ every family

NEURAL = {
    "cnn": ["model.name=resnet18", "model.width_mult=0.125", "features.n_mels=32"],
    "ssl-finetune": ["model.name=hubert", "model.preset=tiny", "model.pooling=stats"],
    "ssl-frozen": ["model.name=hubert", "model.preset=tiny", "model.mode=frozen", "model.pooling=stats",
                   "model.layer_sum=true"],
}


def _batch(name: str, model: Any) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    if name == "cnn":
        return {"x": torch.randn(4, 1, 32, 40)}
    wave, mask = 0.1 * torch.randn(4, 8000), torch.ones(4, 8000, dtype=torch.long)
    if name == "ssl-frozen":
        return {"x": model.pooled_layer_embeddings(wave, mask).detach()}  # (B, L+1, 2H), as cached
    return {"x": wave, "attention_mask": mask}


@pytest.mark.parametrize("name", sorted(NEURAL))
def test_the_adversary_reads_each_familys_embedding_and_reverses_its_gradient(name: str) -> None:
    """The hook sees the head's input ``(B, D)`` in every neural family, and the gradient reaching the net through
    the reversal is exactly ``-lambda`` times the corpus classifier's own."""
    from emoshift.models import family_of
    from emoshift.training.adversary import DomainAdversary, embedding_size

    cfg = load_config(overrides=NEURAL[name])
    family = family_of(cfg.model.name, cfg.model.mode)
    assert family.name == name
    model = family.build(cfg, num_labels=3)
    net = family.train_net(model).eval()
    head = family.embedding_head(net)
    adversary = DomainAdversary(head, ["a", "b"], DannConfig(weight=0.5, schedule="constant"))
    with adversary.watching() as seen:
        family.forward(net, _batch(name, model))
    z = seen.last()
    assert z.shape == (4, embedding_size(head))
    below = [p for n, p in net.named_parameters() if p.requires_grad and "head" not in n]
    domain = torch.tensor([0, 1, 0, 1])
    ce = torch.nn.functional.cross_entropy
    reversed_ = torch.autograd.grad(ce(adversary.classifier(reverse_gradient(z, 0.5)), domain), below,
                                    retain_graph=True, allow_unused=True)
    plain = torch.autograd.grad(ce(adversary.classifier(z), domain), below, allow_unused=True)
    pairs = [(r, p) for r, p in zip(reversed_, plain, strict=True) if p is not None]
    assert pairs and any(float(p.abs().sum()) > 0 for _, p in pairs)
    for r, p in pairs:
        assert torch.allclose(r, -0.5 * p)
    adversary.release()
    with adversary.watching() as after:
        family.forward(net, _batch(name, model))
    assert after.embeddings == []  # released: the net runs unwatched


def test_a_folder_of_audio_under_a_new_name_is_read_label_free(tmp_path: Path) -> None:
    import numpy as np
    import soundfile as sf

    from emoshift.corpora.base import CorpusError, is_unknown_speaker
    from emoshift.corpora.unlabelled import UNLABELLED, scan_unlabelled

    for rel in ("a.wav", "day2/b.flac", "notes.txt", ".hidden.wav"):
        (tmp_path / "target" / rel).parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith((".wav", ".flac")):
            sf.write(tmp_path / "target" / rel, np.zeros(1600, np.float32), 16_000)
        else:
            (tmp_path / "target" / rel).write_text("not audio")
    sc = scan_unlabelled("street", tmp_path / "target")
    assert [u.id for u in sc.utterances] == ["street/a", "street/day2/b"]
    assert all(u.emotion == UNLABELLED and u.corpus == "street" and is_unknown_speaker(u.speaker) for u in sc.utterances)
    with pytest.raises(CorpusError, match="folder not found"):
        scan_unlabelled("street", tmp_path / "nowhere")
