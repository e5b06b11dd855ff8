"""SSL encoders: builders, padding exactness, stage control, parameter groups, the frozen path, load errors."""

from __future__ import annotations

import warnings

import pytest
import torch

from emoshift.models import PretrainedUnavailableError, get_model, list_models, model_input_kind
from emoshift.models.ssl import SSLClassifier, hubert, load_encoder, ssl, tiny_config

LENGTHS = (8000, 5600, 2600)  # samples (0.5, 0.35, 0.16 s); padded to the first


def _tiny(**kw: object) -> SSLClassifier:
    torch.manual_seed(0)
    return hubert(num_labels=4, preset="tiny", **kw)  # type: ignore[arg-type]


def _batch(seed: int = 0, noise_in_padding: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, S) waves at different levels, and their mask; the padding holds noise the model must ignore."""
    g = torch.Generator().manual_seed(seed)
    wave = torch.randn(len(LENGTHS), LENGTHS[0], generator=g) * torch.tensor([[0.1], [0.5], [2.0]])
    mask = torch.zeros(len(LENGTHS), LENGTHS[0], dtype=torch.long)
    for b, n in enumerate(LENGTHS):
        mask[b, :n] = 1
    if not noise_in_padding:
        wave = wave * mask
    return wave, mask


def _alone(model: torch.nn.Module, wave: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.cat([model(wave[b : b + 1, : int(mask[b].sum())]) for b in range(len(wave))])


def _trainable(model: torch.nn.Module) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


# ------------------------------------------------------------------------------------------------ builders


@pytest.mark.parametrize("name", [n for n in list_models() if model_input_kind(n) == "waveform"])
def test_registered_ssl_builders_run_forward_and_backward(name: str) -> None:
    torch.manual_seed(0)
    model = get_model(name, num_labels=5, preset="tiny")
    assert isinstance(model, SSLClassifier) and model.input_kind == "waveform"
    wave, mask = _batch()
    logits = model(wave, mask)
    assert logits.shape == (3, 5)
    logits.logsumexp(dim=1).mean().backward()
    assert model.head[0].weight.grad is not None and model.head[0].weight.grad.abs().sum() > 0
    top = model.layers[-1].feed_forward.output_dense.weight.grad
    assert top is not None and top.abs().sum() > 0
    assert all(p.grad is None for p in model.encoder.feature_extractor.parameters())


def test_tiny_preset_is_seeded_by_torch() -> None:
    a, b = _tiny(), _tiny()
    torch.manual_seed(1)
    c = hubert(num_labels=4, preset="tiny")
    wa, wb, wc = (m.layers[0].attention.q_proj.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
    assert a.num_layers == 2 and a.hidden_size == 32


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pooling": "max"}, "pooling must be one of"),
        ({"mode": "linear"}, "mode must be one of"),
        ({"preset": "huge"}, "preset must be one of"),
        ({"mode": "frozen", "pooling": "attentive"}, "frame-level states"),
        ({"preset": "tiny", "pretrained": "facebook/wav2vec2-base"}, "either pretrained"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        hubert(num_labels=4, **{"preset": "tiny", **kwargs})  # type: ignore[arg-type]


def test_ssl_needs_a_source() -> None:
    with pytest.raises(ValueError, match="pretrained"):
        ssl(num_labels=4)


# ------------------------------------------------------------------------------------------------ padding


@pytest.mark.parametrize("pooling", ["mean", "stats", "attentive"])
@pytest.mark.parametrize("layer_sum", [False, True])
def test_padded_batch_equals_items_alone(pooling: str, layer_sum: bool) -> None:
    model = _tiny(pooling=pooling, layer_sum=layer_sum).eval()
    wave, mask = _batch()
    with torch.no_grad():
        batched = model(wave, mask)
        alone = _alone(model, wave, mask)
    assert model.padding_exact
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=0)


@pytest.mark.parametrize("model_type", ["wav2vec2", "wavlm", "whisper"])
def test_other_encoder_families_pad_exactly(model_type: str) -> None:
    torch.manual_seed(0)
    config = tiny_config(model_type)
    from transformers import AutoModel

    encoder = AutoModel.from_config(config)
    encoder = encoder.get_encoder() if model_type == "whisper" else encoder
    model = SSLClassifier(encoder, num_labels=3, pooling="stats", layer_sum=True).eval()
    wave, mask = _batch(noise_in_padding=model_type != "whisper")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # WavLM's mixed mask types
        batched = model(wave, mask)
        alone = _alone(model, wave, mask)
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=0)


def test_group_norm_and_leaky_encoders_say_padding_is_not_exact() -> None:
    from transformers import AutoModel, HubertConfig, HubertModel

    torch.manual_seed(0)
    small = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}
    group = HubertModel(HubertConfig(**small, conv_dim=(32, 32), conv_kernel=(10, 8), conv_stride=(5, 8)))
    d2v = AutoModel.from_config(tiny_config("data2vec-audio"))
    assert not SSLClassifier(group, num_labels=2).padding_exact
    assert not SSLClassifier(d2v, num_labels=2).padding_exact


def test_waveforms_are_standardised_inside_the_model() -> None:
    model = _tiny().eval()
    wave, mask = _batch(noise_in_padding=False)
    with torch.no_grad():
        torch.testing.assert_close(model(wave, mask), model(wave * 7.0 + 0.1 * mask, mask), atol=1e-5, rtol=0)


# ------------------------------------------------------------------------------------------------ stages


def test_set_trainable_selects_exactly_the_configured_parameters() -> None:
    model = _tiny(pooling="attentive", layer_sum=True)
    names = {n for n, _ in model.named_parameters()}
    head = {n for n in names if n.startswith(("head.", "pool.", "layer_weights."))}
    stem = {n for n in names if n.startswith("encoder.feature_extractor.")}
    top_layer = {n for n in names if n.startswith("encoder.encoder.layers.1.")}
    out_norm = {n for n in names if n.startswith("encoder.encoder.layer_norm.")}  # pre-LN: sits on top
    assert head and stem and top_layer and out_norm

    assert _trainable(model) == names - stem  # finetune default: everything but the conv feature encoder
    model.set_trainable("head")
    assert _trainable(model) == head
    model.set_trainable("top", top_k=1)
    assert _trainable(model) == head | top_layer | out_norm
    model.set_trainable("top", top_k=2)
    layers = {n for n in names if n.startswith("encoder.encoder.layers.")}
    assert _trainable(model) == head | layers | out_norm
    model.set_trainable("all")
    assert _trainable(model) == names - stem
    with pytest.raises(ValueError, match="top_k"):
        model.set_trainable("top", top_k=3)
    with pytest.raises(ValueError, match="top_k"):
        model.set_trainable("top")


def test_frozen_mode_trains_the_head_only() -> None:
    model = _tiny(mode="frozen", layer_sum=True)
    assert _trainable(model) == {
        n for n, _ in model.named_parameters() if n.startswith(("head.", "layer_weights."))
    }
    with pytest.raises(ValueError, match="finetune"):
        model.set_trainable("all")


def test_param_groups_cover_each_parameter_once_with_layer_decayed_lrs() -> None:
    model = _tiny(pooling="attentive", layer_sum=True)
    n = model.num_layers
    groups = model.param_groups(head_lr=1e-3, encoder_lr=1e-4, layer_decay=0.5, weight_decay=0.05)
    seen = [id(p) for g in groups for p in g["params"]]
    expected = {
        id(p) for name, p in model.named_parameters() if not name.startswith("encoder.feature_extractor.")
    }
    assert len(seen) == len(set(seen)) and set(seen) == expected

    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    wd_of = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    for name, p in model.named_parameters():
        if name.startswith("encoder.feature_extractor."):
            continue
        if name.startswith(("head.", "pool.", "layer_weights.")):
            want = 1e-3
        elif name.startswith("encoder.encoder.layers."):
            i = int(name.split(".")[3])
            want = 1e-4 * 0.5 ** (n - 1 - i)
        elif name.startswith("encoder.encoder.layer_norm."):
            want = 1e-4  # the output norm of a pre-LN encoder goes with the top layer
        else:
            want = 1e-4 * 0.5**n  # feature projection, positional conv, masked_spec_embed
        assert lr_of[id(p)] == pytest.approx(want), name
        no_decay = p.dim() <= 1 or "norm" in name or name.endswith("original0")
        assert wd_of[id(p)] == (0.0 if no_decay else 0.05), name
    assert any(wd_of[id(p)] == 0.05 for p in model.parameters() if id(p) in wd_of)

    # one optimizer for every stage: frozen parameters are in it and simply get no update
    model.set_trainable("head")
    opt = torch.optim.AdamW(groups)
    before = model.layers[0].attention.q_proj.weight.detach().clone()
    wave, mask = _batch()
    model(wave, mask).sum().backward()
    opt.step()
    assert torch.equal(before, model.layers[0].attention.q_proj.weight)


# ------------------------------------------------------------------------------------------------ frozen path


def test_pooled_layer_embeddings_shape_and_no_grad() -> None:
    model = _tiny().train()
    wave, mask = _batch()
    emb = model.pooled_layer_embeddings(wave, mask)
    assert emb.shape == (3, model.num_layers + 1, 2 * model.hidden_size) and emb.dtype == torch.float32
    assert not emb.requires_grad and model.encoder.training  # eval only inside the call
    with torch.no_grad():
        alone = torch.cat(
            [model.pooled_layer_embeddings(wave[b : b + 1, : LENGTHS[b]], None) for b in range(3)]
        )
    torch.testing.assert_close(emb, alone, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("mode", "pooling", "layer_sum"),
    [
        ("frozen", "mean", False),
        ("frozen", "mean", True),
        ("frozen", "stats", True),
        ("finetune", "mean", True),
    ],
)
def test_head_trained_on_cache_equals_full_model(mode: str, pooling: str, layer_sum: bool) -> None:
    model = _tiny(mode=mode, pooling=pooling, layer_sum=layer_sum)
    wave, mask = _batch()
    emb = model.pooled_layer_embeddings(wave, mask)  # what the cache stores
    head = model.frozen_head()
    assert head.head is model.head and head.layer_weights is model.layer_weights  # shared, not copied
    opt = torch.optim.SGD(head.parameters(), lr=0.5)
    before = model.head[0].weight.detach().clone()
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(head(emb), torch.tensor([0, 1, 2])).backward()
        opt.step()
    assert not torch.equal(before, model.head[0].weight)  # training the cache head trained the classifier
    if layer_sum:
        assert model.layer_weights is not None and model.layer_weights.weights.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(wave, mask), head(emb), atol=1e-5, rtol=0)


def test_frozen_head_refuses_frame_level_pooling() -> None:
    with pytest.raises(ValueError, match="cached embeddings"):
        _tiny(pooling="attentive").frozen_head()
    with pytest.raises(ValueError, match="cached embeddings"):
        _tiny(pooling="stats", layer_sum=True).frozen_head()


# ------------------------------------------------------------------------------------------------ loading


def test_unreachable_hub_id_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PretrainedUnavailableError) as err:
        hubert(num_labels=4, pretrained="no-such-org/no-such-model")
    msg = str(err.value)
    assert "\n" not in msg and "no-such-org/no-such-model" in msg and "model.pretrained" in msg


def test_missing_local_folder_is_one_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    missing = str(tmp_path / "no-such-folder")
    with pytest.raises(PretrainedUnavailableError) as err:
        ssl(num_labels=4, pretrained=missing)
    msg = str(err.value)
    assert "\n" not in msg and missing in msg and "model.pretrained" in msg


def test_loads_a_saved_folder(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from transformers import AutoModel

    torch.manual_seed(0)
    config = tiny_config("wav2vec2")
    config.layerdrop = 0.2
    AutoModel.from_config(config).save_pretrained(tmp_path / "w2v")
    encoder = load_encoder(str(tmp_path / "w2v"))
    assert encoder.config.model_type == "wav2vec2" and encoder.config.layerdrop == 0.0
    model = ssl(num_labels=3, pretrained=str(tmp_path / "w2v"), layer_sum=True)
    wave, mask = _batch()
    assert model(wave, mask).shape == (3, 3)
