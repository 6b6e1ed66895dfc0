"""Supernet and standalone subnet: incremental decoding, export, sharing modes, sampling."""
from __future__ import annotations

import dataclasses
import random
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf
from scipy.stats import chisquare

from fairseq_shiftadd.data.sized_dictionary import dictionary_of_size
from fairseq_shiftadd.models.export import export_subnet
from fairseq_shiftadd.models.shiftadd_supernet import ShiftAddSupernet, ShiftAddSupernetConfig
from fairseq_shiftadd.models.shiftadd_transformer import ShiftAddTransformer, ShiftAddTransformerConfig
from fairseq_shiftadd.modules.laplace_transform import LaplaceTransform
from fairseq_shiftadd.modules.operator_linear import OperatorLinear
from fairseq_shiftadd.space import DECODER_BLOCKS, ENCODER_BLOCKS, FFN_TYPES, SearchSpace

SPACE = SearchSpace.from_file("configs/spaces/tiny.yml")


def fake_task(vocab: int = 24) -> SimpleNamespace:
    dictionary = dictionary_of_size(vocab)
    return SimpleNamespace(source_dictionary=dictionary, target_dictionary=dictionary, space=SPACE)


def supernet(sharing: str = "none", seed: int = 0) -> ShiftAddSupernet:
    torch.manual_seed(seed)
    cfg = ShiftAddSupernetConfig(weight_sharing=sharing, dropout=0.0, attention_dropout=0.0)
    model = ShiftAddSupernet.build_model(cfg, fake_task()).double().eval()
    model.cfg = cfg  # what fairseq would save as cfg.model
    return model


def batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(4, 24, (3, 9), generator=g)
    src[0, :2] = 1  # fairseq left-pads sources
    lengths = src.ne(1).sum(1)
    tgt = torch.randint(4, 24, (3, 7), generator=g)
    return src, lengths, tgt


def with_decoder(block: str, ffn: str) -> "Subnet":  # noqa: F821
    base = SPACE.sample(random.Random(f"{block}{ffn}"))
    layers = base.decoder_layer_num
    return dataclasses.replace(base, decoder_block_types=(block,) * layers, decoder_ffn_types=(ffn,) * layers)


@pytest.mark.parametrize("block", DECODER_BLOCKS)
@pytest.mark.parametrize("ffn", FFN_TYPES)
def test_incremental_decoding_runs_the_training_operators(block: str, ffn: str) -> None:
    model = supernet("heterogeneous")
    model.set_subnet(with_decoder(block, ffn))
    src, lengths, tgt = batch()
    with torch.no_grad():
        full, _ = model(src, lengths, tgt)
        encoder_out = model.encoder(src, lengths)
        state: dict = {}
        steps = [model.decoder(tgt[:, : t + 1], encoder_out, incremental_state=state)[0] for t in range(tgt.size(1))]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("block", ENCODER_BLOCKS)
def test_a_left_padded_source_encodes_as_it_does_alone(block: str) -> None:
    """Padding never leaks into an encoder's real steps: a sentence in a batch with a longer one
    (left-padded, as fairseq batches sources) encodes exactly as the sentence alone."""
    model = supernet("heterogeneous")
    base = SPACE.sample(random.Random(block))
    model.set_subnet(dataclasses.replace(base, encoder_block_types=(block,) * base.encoder_layer_num))
    src, lengths, _ = batch()
    with torch.no_grad():
        batched = model.encoder(src, lengths)["encoder_out"][0]
        alone = model.encoder(src[:1, 2:], lengths[:1])["encoder_out"][0]
    # Attention's softmax runs in float32 even in a double model (fairseq's utils.softmax), and its sums over
    # 7 or 9 keys round differently by CPU: ~1e-7 apart. A padded step leaking into an add filter moves
    # the output by about |w| per tap (the zeros check below), orders of magnitude more.
    torch.testing.assert_close(batched[2:, :1], alone, rtol=1e-5, atol=1e-6)
    if "add" in block:  # models trained before the fix keep what they computed: zeros enter the add filters
        zeros = ShiftAddSupernet.build_model(ShiftAddSupernetConfig(weight_sharing="heterogeneous", add_conv_padding="zeros",
                                                                   dropout=0.0, attention_dropout=0.0), fake_task()).double().eval()
        zeros.load_state_dict(model.state_dict())
        zeros.set_subnet(model.subnet)
        with torch.no_grad():
            assert not torch.allclose(zeros.encoder(src, lengths)["encoder_out"][0][2:, :1], alone)


def test_incremental_state_follows_beam_reordering() -> None:
    model = supernet()
    model.set_subnet(with_decoder("attn+add", "mult"))
    src, lengths, tgt = batch()
    order = torch.tensor([2, 0, 1])
    with torch.no_grad():
        encoder_out = model.encoder(src, lengths)
        state: dict = {}
        for t in range(3):
            model.decoder(tgt[:, : t + 1], encoder_out, incremental_state=state)
        model.decoder.reorder_incremental_state_scripting(state, order)
        reordered = model.encoder.reorder_encoder_out(encoder_out, order)
        step = model.decoder(tgt[order, :4], reordered, incremental_state=state)[0]
        full = model(src[order], lengths[order], tgt[order, :4])[0][:, -1:]
    torch.testing.assert_close(step, full, rtol=1e-9, atol=1e-9)


def standalone_of(state: dict, subnet, task, keep_weight_sharing: bool = False) -> ShiftAddTransformer:
    """The standalone model export_subnet makes of a supernet checkpoint ``state``."""
    exported = export_subnet(state, subnet, keep_weight_sharing)
    fields = set(ShiftAddTransformerConfig.__dataclass_fields__)
    standalone_cfg = ShiftAddTransformerConfig(**{k: v for k, v in exported["cfg"]["model"].items() if k in fields})
    standalone = ShiftAddTransformer.build_model(standalone_cfg, task).to(exported["model"]["encoder.embed_tokens.weight"].dtype)
    standalone.load_state_dict(exported["model"])
    return standalone


@pytest.mark.parametrize("keep_weight_sharing", [False, True])
@pytest.mark.parametrize("sharing", ["none", "plain", "heterogeneous"])
def test_exported_subnet_computes_what_the_supernet_computes(sharing: str, keep_weight_sharing: bool) -> None:
    """In the supernet's layout and converted to one weight per operator (the default): the same logits,
    for subnets running every block and FFN operator, with trained (not unit) heterogeneous scales T."""
    model = supernet(sharing)
    rng = random.Random(3)
    for module in model.modules():
        if isinstance(module, LaplaceTransform):
            module.scale.data.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(4))
    src, lengths, tgt = batch(1)
    cfg = OmegaConf.to_container(OmegaConf.structured(model.cfg))
    task = fake_task()
    for subnet in [*every_operator_subnets(), SPACE.sample(rng), SPACE.sample(rng)]:
        model.set_subnet(subnet)
        state = {"cfg": {"model": dict(cfg, _name="shiftadd_supernet")}, "model": model.state_dict()}
        standalone = standalone_of(state, subnet, task, keep_weight_sharing).double().eval()
        layouts = {module.weight_sharing for module in standalone.modules() if isinstance(module, OperatorLinear)}
        assert layouts == {sharing if keep_weight_sharing else "none"}
        with torch.no_grad():
            torch.testing.assert_close(standalone(src, lengths, tgt)[0], model(src, lengths, tgt)[0], rtol=1e-9, atol=1e-9)
        supernet_params = sum(p.numel() for p in model.parameters())
        assert sum(p.numel() for p in standalone.parameters()) < supernet_params


def test_weight_sharing_modes_shrink_the_supernet() -> None:
    counts = {mode: sum(p.numel() for p in supernet(mode).parameters()) for mode in ("none", "plain", "heterogeneous")}
    assert counts["plain"] < counts["none"]
    # heterogeneous = plain + one 100-bin scale per add-capable FFN linear (2 per layer, 4 layers)
    assert counts["heterogeneous"] - counts["plain"] == 100 * 2 * (2 + 2)


def test_heterogeneous_kl_regulariser_trains_the_transform() -> None:
    model = supernet("heterogeneous").float().train()
    subnet = dataclasses.replace(SPACE.largest(), encoder_ffn_types=("add", "add"), decoder_ffn_types=("add", "add"))
    model.set_subnet(subnet)
    kl = model.regularization_loss()
    assert kl is not None and torch.isfinite(kl) and kl > 0
    kl.backward()
    scale = model.encoder.layers[0].ffn.fc1.laplace.scale
    assert scale.grad is not None and scale.grad.abs().sum() > 0
    model.set_subnet(dataclasses.replace(subnet, encoder_ffn_types=("mult", "mult"), decoder_ffn_types=("shift", "shift")))
    assert model.regularization_loss() is None


def test_sampling_is_a_function_of_seed_and_update() -> None:
    assert SPACE.sample_for_update(1, 17) == SPACE.sample_for_update(1, 17)
    draws = {SPACE.sample_for_update(1, update).key() for update in range(50)}
    assert len(draws) > 45
    assert SPACE.sample_for_update(2, 17) != SPACE.sample_for_update(1, 17)


def test_sampling_covers_every_choice_uniformly() -> None:
    draws = [SPACE.encode(SPACE.sample_for_update(7, update)) for update in range(3000)]
    for index, gene in enumerate(SPACE.genes()):
        if len(gene.choices) == 1 or (gene.layer is not None and gene.layer > 0 and gene.field.startswith("decoder")):
            continue  # inactive when the decoder has one layer: encode() repeats the last value
        counts = [sum(1 for d in draws if d[index] == choice) for choice in gene.choices]
        assert min(counts) > 0, gene.name
        assert chisquare(counts).pvalue > 1e-4, (gene.name, counts)


def test_representative_subnets_are_in_the_space() -> None:
    for subnet in (SPACE.largest(), SPACE.smallest(), SPACE.representative_hybrid()):
        SPACE.validate(subnet)
    assert SPACE.largest().encoder_embed_dim == 64 and SPACE.smallest().encoder_embed_dim == 32


def every_operator_subnets() -> list:
    """Subnets of the tiny space that together run every block type and FFN operator."""
    base = SPACE.sample(random.Random(0))
    enc, dec = SPACE.encoder.block_types, SPACE.decoder.block_types
    return [
        dataclasses.replace(
            base,
            encoder_block_types=tuple(enc[(2 * i + j) % len(enc)] for j in range(base.encoder_layer_num)),
            decoder_block_types=tuple(dec[(i + j) % len(dec)] for j in range(base.decoder_layer_num)),
            encoder_ffn_types=(ffn,) * base.encoder_layer_num,
            decoder_ffn_types=(ffn,) * base.decoder_layer_num,
        )
        for i, ffn in enumerate(("add", "shift", "mult", "add"))
    ]


def check_autocast_bfloat16(model) -> None:
    """Logits under torch.autocast("cpu", bfloat16) against float32, and finite gradients of a backward.

    bfloat16 rounding (2^-8) grows to about 0.3% of the logits' spread (RMS) through multiplication
    and shift layers, and to 9-21% through add FFNs, whose LayerNorm of a small centred signal
    amplifies structured input perturbations (measured at initialisation, three seeds). The check:
    RMS difference under 30% of the float32 logits' standard deviation (unrelated logits give ~140%).
    """
    src, lengths, tgt = batch(2)
    with torch.no_grad():
        reference = model(src, lengths, tgt)[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(src, lengths, tgt)[0]
    assert logits.dtype == torch.bfloat16
    assert (logits.float() - reference).pow(2).mean().sqrt() < 0.3 * reference.std()
    model.zero_grad()
    logits.float().logsumexp(-1).sum().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_supernet_and_standalone_subnet_under_autocast_bfloat16() -> None:
    model = supernet("heterogeneous").float()
    cfg = OmegaConf.to_container(OmegaConf.structured(model.cfg))
    for subnet in every_operator_subnets():
        model.set_subnet(subnet)
        check_autocast_bfloat16(model)
    state = {"cfg": {"model": dict(cfg, _name="shiftadd_supernet")}, "model": model.state_dict()}
    check_autocast_bfloat16(standalone_of(state, subnet, fake_task()).eval())


def test_a_config_saved_before_newer_options_existed_builds_with_their_defaults() -> None:
    """fairseq builds a checkpoint's model from its saved cfg.model; one without the options added
    since (operator recipe, quantisation) must build, with those options at their defaults, except
    where the default changed what a trained model computes: there, the behaviour it was trained with."""
    newer = ("shift_parametrization", "add_weight_scale", "add_output_gain", "quant_bits", "quant_grad_bits", "quant_integer",
             "add_conv_padding")
    fields = {k: v for k, v in dataclasses.asdict(ShiftAddSupernetConfig()).items() if k not in newer}
    old_cfg = OmegaConf.create(fields)
    OmegaConf.set_struct(old_cfg, True)  # as fairseq hands it over: unknown keys raise
    torch.manual_seed(0)
    model = ShiftAddSupernet.build_model(old_cfg, fake_task())
    assert [old_cfg[k] for k in newer[:-1]] == [getattr(ShiftAddSupernetConfig(), k) for k in newer[:-1]]
    assert old_cfg.add_conv_padding == "zeros" and ShiftAddSupernetConfig().add_conv_padding == "masked"
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in supernet().parameters())


def test_a_checkpoint_saved_before_masked_add_padding_loads_with_the_padding_it_was_trained_with(tmp_path) -> None:
    """fairseq fills a saved cfg.model's missing keys with today's defaults; our checkpoint upgrade
    runs first, so an old checkpoint of ours keeps ``zeros`` and every other one is left alone."""
    from fairseq_shiftadd.checkpoint_compat import load_weights_only

    cases = {"old": {"_name": "shiftadd_supernet", "weight_sharing": "none"},
             "new": {"_name": "shiftadd_transformer", "weight_sharing": "none", "add_conv_padding": "masked"},
             "fairseq": {"_name": "transformer"}}
    loaded = {}
    for name, model_cfg in cases.items():
        torch.save({"cfg": {"model": model_cfg}, "model": {}}, tmp_path / f"{name}.pt")
        loaded[name] = load_weights_only(tmp_path / f"{name}.pt")["cfg"]["model"]
    assert loaded["old"]["add_conv_padding"] == "zeros" and loaded["new"]["add_conv_padding"] == "masked"
    assert loaded["fairseq"] == {"_name": "transformer"}


def test_an_8_bit_model_projects_onto_the_vocabulary_on_the_8_bit_grids() -> None:
    torch.manual_seed(0)
    model = ShiftAddSupernet.build_model(ShiftAddSupernetConfig(dropout=0.0, quant_bits=8), fake_task()).eval()
    model.set_subnet(SPACE.largest())
    quantizer = model.decoder.quant["output_projection"]
    quantizer.running_range.fill_(1.5)
    features = torch.randn(2, 3, SPACE.largest().decoder_embed_dim)
    weight = model.decoder.embed_tokens.weight[:, : features.size(-1)].detach()
    q = 127
    x_scale, w_scale = 1.5 / q, weight.abs().max() / q
    x_int = torch.round(features / x_scale).clamp(-q, q).double()
    w_int = torch.round(weight / w_scale).clamp(-q, q).double()
    expected = (x_int @ w_int.t()) * (x_scale * float(w_scale))
    torch.testing.assert_close(model.decoder.output_layer(features).double(), expected, rtol=1e-5, atol=1e-5)
