"""Pruning: exact sparsity, whole blocks, N:M groups, structured shrink + export, gradual.

Every number here is measured on real models (digits models trained on the real split).
"""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from edgebench.models import ModelSpec, get_model
from edgebench.prune import (
    BlockConfig,
    ChannelConfig,
    GradualConfig,
    NMConfig,
    PolynomialDecay,
    PruneError,
    PruneResult,
    ThresholdConfig,
    UnstructuredConfig,
    parse_prune,
    prune,
)


@functools.cache
def _built(name: str) -> tuple[ModelSpec, nn.Module, torch.Tensor]:
    spec = get_model(name)
    return spec, spec.build(), spec.example_input()


def run(name: str, config) -> tuple[PruneResult, nn.Module]:
    spec, model, example = _built(name)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = prune(model, config, example, spec)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "prune() modified its input"
    return result, model


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: m.weight.detach() for n, m in model.named_modules()
            if isinstance(m, nn.Linear | nn.Conv2d)}


def zeros(t: torch.Tensor) -> int:
    return int((t == 0).sum())


# --- grammar ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("unstructured:0.9", UnstructuredConfig(0.9)),
    ("unstructured:0.9:global", UnstructuredConfig(0.9, scope="global")),
    ("threshold:0.05", ThresholdConfig(0.05)),
    ("block:8x1:0.9", BlockConfig((8, 1), 0.9)),
    ("nm:2:4", NMConfig(2, 4)),
    ("channel:0.5", ChannelConfig(0.5)),
    ("gradual:0.9", GradualConfig(UnstructuredConfig(0.9))),
    ("gradual:block:4x1:0.9", GradualConfig(BlockConfig((4, 1), 0.9))),
    ("gradual:unstructured:0.8:global", GradualConfig(UnstructuredConfig(0.8, scope="global"))),
])
def test_grammar_parses_and_round_trips(text, expected):
    config = parse_prune(text)
    assert config == expected
    assert parse_prune(config.text) == config
    assert config.kind == ("structured" if text.startswith("channel") else "masked")


@pytest.mark.parametrize("text, message", [
    ("prune:0.5", "unknown pruning method 'prune' in 'prune:0.5' (known: unstructured, "
                  "threshold, block, nm, channel, gradual)"),
    ("unstructured:1.0", "sparsity 1 is outside [0, 1)"),
    ("unstructured:-0.1", "sparsity -0.1 is outside [0, 1)"),
    ("unstructured:90", "outside [0, 1) (a fraction: 0.9 for 90%)"),
    ("unstructured:abc", "sparsity 'abc' is not a number"),
    ("unstructured:0.5:everywhere", "unexpected 'everywhere'"),
    ("channel:1", "sparsity 1 is outside [0, 1)"),
    ("block:8by1:0.9", "bad block '8by1' (expected RxC with positive integers, e.g. 4x1)"),
    ("block:0x1:0.9", "bad block '0x1'"),
    ("block:4x1", "expected block:RxC:SPARSITY"),
    ("nm:5:4", "N:M needs 1 <= N <= M, got 5:4"),
    ("nm:0:4", "N:M needs 1 <= N <= M, got 0:4"),
    ("nm:2", "expected nm:N:M"),
    ("threshold:-1", "threshold must be >= 0"),
    ("gradual:nm:2:4", "gradual pruning supports unstructured and block, not 'nm'"),
])
def test_bad_grammar_names_the_problem(text, message):
    with pytest.raises(PruneError) as e:
        parse_prune(text)
    assert message in str(e.value)


@pytest.mark.parametrize("make, message", [
    (lambda: UnstructuredConfig(1.5), "sparsity 1.5 is outside [0, 1)"),
    (lambda: UnstructuredConfig(0.5, scope="everything"), "scope must be 'layer' or 'global'"),
    (lambda: BlockConfig((4, 0), 0.5), "block must be two positive integers"),
    (lambda: NMConfig(3, 2), "N:M needs 1 <= N <= M, got 3:2"),
    (lambda: UnstructuredConfig(0.5, types=("LSTM",)), "unsupported layer type(s) LSTM"),
    (lambda: GradualConfig(NMConfig(2, 4)), "needs an UnstructuredConfig or BlockConfig"),
    (lambda: GradualConfig(UnstructuredConfig(0.5), initial_sparsity=0.6),
     "initial_sparsity 0.6 exceeds the final sparsity 0.5"),
])
def test_bad_configs_from_python(make, message):
    with pytest.raises(PruneError) as e:
        make()
    assert message in str(e.value)


class GRUNet(nn.Module):
    """torch-pruning cannot trace through nn.GRU (IndexError in its graph builder)."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.gru, self.b = nn.Linear(8, 16), nn.GRU(16, 16, batch_first=True), nn.Linear(
            16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.gru(self.a(x))[0])


@pytest.mark.parametrize("name, config, message", [
    ("digits-mlp", UnstructuredConfig(0.5, include=("fc9",)),
     "unknown layer 'fc9' in include (layers: 0, 2, 4)"),
    ("digits-mlp", UnstructuredConfig(0.5, exclude=("9",)), "unknown layer '9' in exclude"),
    ("digits-cnn", UnstructuredConfig(0.5, include=("features.1",)),
     "include 'features.1' matches 'features.1' (BatchNorm2d), not a prunable layer"),
    ("digits-cnn", NMConfig(2, 4, include=("features.0",)),
     "layer 'features.0' cannot take nm:2:4: input dim 9 of 2-D weight [16, 9] is not a "
     "multiple of M=4"),
    ("digits-mlp", BlockConfig((5, 1), 0.5, include=("2",)),
     "layer '2' cannot take block:5x1:0.5: 2-D weight [64, 128] does not tile into 5x1 blocks"),
    ("digits-mlp", BlockConfig((128, 128), 0.5),
     "model 'digits-mlp': nothing to prune with block:128x128:0.5 (4: last layer kept dense "
     "(keep_first_last); 0: 2-D weight [128, 64] does not tile into 128x128 blocks"),
    ("digits-cnn", ChannelConfig(0.5, include=("classifier",)),
     "layer 'classifier' cannot lose channels: its outputs are the model's outputs"),
    ("encoder", GradualConfig(UnstructuredConfig(0.5)),
     "model 'encoder': gradual pruning trains on the model's data and it has none"),
    ("resnet18", UnstructuredConfig(0.5, finetune_epochs=1),
     "model 'resnet18': fine-tuning trains on the model's data and it has none"),
])
def test_bad_requests_name_the_problem(name, config, message):
    spec, model, example = _built(name)
    with pytest.raises(PruneError) as e:
        prune(model, config, example, spec)
    assert message in str(e.value)


def test_gradual_without_spec_and_untraceable_model():
    _, model, example = _built("digits-mlp")
    with pytest.raises(PruneError, match="pass a ModelSpec that has data"):
        prune(model, "gradual:0.5", example)
    with pytest.raises(PruneError) as e:
        prune(GRUNet(), "channel:0.5", torch.randn(1, 3, 8))
    assert "model 'GRUNet': torch-pruning cannot trace or prune it: IndexError" in str(e.value)


# --- exact sparsity -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["digits-cnn", "digits-mlp"])
@pytest.mark.parametrize("sparsity", [0.3, 0.731, 0.9, 0.95])
def test_per_layer_sparsity_is_exact(name, sparsity):
    result, model = run(name, UnstructuredConfig(sparsity))
    old, new = weights(model), weights(result.model)
    pruned = [la for la in result.layers if la.pruned]
    assert pruned and result.kind == "masked"
    for la in result.layers:
        if la.pruned:
            assert zeros(new[la.name]) == round(sparsity * la.params), la.name
            kept = new[la.name] != 0  # the survivors are the largest, unchanged
            assert torch.equal(new[la.name][kept], old[la.name][kept])
            assert old[la.name][~kept].abs().max() <= old[la.name][kept].abs().min()
        else:
            assert torch.equal(new[la.name], old[la.name]), la.name
    assert result.pruned_sparsity == pytest.approx(sparsity, abs=1e-3)


def test_ties_are_cut_exactly_not_by_threshold():
    model = nn.Sequential(nn.Linear(10, 10), nn.ReLU(), nn.Linear(10, 10))
    with torch.no_grad():
        model[0].weight.fill_(0.5)  # 100 equal magnitudes: a threshold zeroes all or none
    result = prune(model, UnstructuredConfig(0.37, keep_first_last=False), torch.randn(1, 10))
    assert [zeros(w) for w in weights(result.model).values()] == [37, 37]


@pytest.mark.parametrize("sparsity", [0.5, 0.9])
def test_global_sparsity_is_exact_over_pruned_layers(sparsity):
    result, _ = run("digits-cnn", UnstructuredConfig(sparsity, scope="global"))
    pruned = [la for la in result.layers if la.pruned]
    total = sum(la.params for la in pruned)
    assert sum(la.params - la.nonzero for la in pruned) == round(sparsity * total)
    assert len({round(la.sparsity, 3) for la in pruned}) > 1  # ranked globally, not per layer


def test_threshold_zeroes_exactly_below_t():
    result, model = run("digits-mlp", ThresholdConfig(0.05))
    old, new = weights(model), weights(result.model)
    for la in result.layers:
        if la.pruned:
            small = old[la.name].abs() < 0.05
            assert (new[la.name][small] == 0).all()
            assert torch.equal(new[la.name][~small], old[la.name][~small])
    assert 0 < result.sparsity < 1


@pytest.mark.parametrize("n, m", [(2, 4), (1, 4), (2, 8)])
def test_every_nm_group_holds_at_most_n_nonzeros(n, m):
    for name in ("digits-cnn", "digits-mlp"):
        result, _ = run(name, NMConfig(n, m, keep_first_last=False))
        for la in result.layers:
            w2d = weights(result.model)[la.name].reshape(la.shape[0], -1)
            if not la.pruned:
                continue
            groups = (w2d != 0).reshape(w2d.shape[0], -1, m).sum(-1)
            assert groups.max() <= n and groups.min() == n, la.name  # trained: no stray zeros
            assert la.sparsity == pytest.approx(1 - n / m)
        if name == "digits-cnn":  # first conv: [16, 1*3*3], 9 inputs do not group by m
            assert result.skipped == [("features.0", f"input dim 9 of 2-D weight [16, 9] is not "
                                                     f"a multiple of M={m}")]


@pytest.mark.parametrize("block, sparsity, scope", [((4, 1), 0.9, "layer"), ((8, 2), 0.7, "layer"),
                                                    ((4, 1), 0.8, "global")])
def test_blocks_are_whole_and_counted_exactly(block, sparsity, scope):
    r, c = block
    result, model = run("digits-cnn", BlockConfig(block, sparsity, scope=scope,
                                                  keep_first_last=False))
    old, new = weights(model), weights(result.model)
    n_zero = n_blocks = 0
    for la in result.layers:
        if not la.pruned:
            continue
        o = la.shape[0]
        tiles = lambda w, o=o: w.reshape(o // r, r, -1, c).transpose(1, 2)  # noqa: E731
        nb, ob = tiles(new[la.name]), tiles(old[la.name])
        all_zero = (nb == 0).all(-1).all(-1)
        untouched = (nb == ob).all(-1).all(-1)
        assert (all_zero | untouched).all(), la.name
        if scope == "layer":
            assert int(all_zero.sum()) == round(sparsity * all_zero.numel()), la.name
        n_zero, n_blocks = n_zero + int(all_zero.sum()), n_blocks + all_zero.numel()
    assert n_zero == round(sparsity * n_blocks)
    skipped = dict(result.skipped)
    assert "does not tile" in skipped["classifier"]  # [10, 64]: 10 rows do not split by 4 or 8


def test_pruned_model_is_plain_no_hooks_no_weight_orig():
    for config in ("unstructured:0.8", "block:4x1:0.5", "nm:2:4", "channel:0.5"):
        result, model = run("digits-cnn", config)
        keys = set(result.model.state_dict())
        assert not any(k.endswith(("_orig", "_mask")) for k in keys), config
        for m in result.model.modules():
            assert not (m._forward_hooks or m._forward_pre_hooks or m._backward_hooks), config
        assert all(type(p) is nn.Parameter for p in result.model.parameters())
        if result.kind == "masked":  # same keys; the zeros live in the plain weight tensors
            assert keys == set(model.state_dict())
            fresh = get_model("digits-cnn").build()
            fresh.load_state_dict(result.model.state_dict())
            conv = next(la for la in result.layers if la.name == "features.3")
            assert zeros(fresh.features[3].weight) == conv.params - conv.nonzero > 0


# --- structured ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["digits-cnn", "resnet18",
                                  pytest.param("mobilenetv2", marks=pytest.mark.slow)])
def test_channel_pruning_shrinks_and_exports(name):
    _, model, example = _built(name)
    result, _ = run(name, ChannelConfig(0.5))
    assert result.kind == "structured"
    assert result.params < 0.5 * result.params_before
    assert result.macs < 0.5 * result.macs_before
    with torch.no_grad():
        assert result.model(example).shape == model(example).shape
    ep = torch.export.export(result.model, (example,))
    with torch.no_grad():
        torch.testing.assert_close(ep.module()(example), result.model(example))


def test_encoder_channel_pruning_shrinks_ffn_only():
    example = _built("encoder")[2]
    result, _ = run("encoder", "channel:0.5")
    changed = {la.name for la in result.layers if la.pruned}
    assert changed == {f"layers.{i}.ffn.{j}" for i in range(4) for j in (0, 2)}
    assert {la.shape for la in result.layers if la.name.endswith("ffn.0")} == {(512, 256)}
    assert any("inside SelfAttention" in why for _, why in result.skipped)
    assert result.params < result.params_before and result.macs < result.macs_before
    torch.export.export(result.model, (example,))


# --- gradual ------------------------------------------------------------------------------------

def test_polynomial_decay_matches_tf_mot_and_ends_exactly():
    s = PolynomialDecay(0.0, 0.9, begin_step=10, end_step=95, frequency=20, power=3)
    assert s(10) == 0.0 and s(95) == pytest.approx(0.9) and s(500) == pytest.approx(0.9)
    assert s(52.5) == pytest.approx(0.9 * (1 - 0.5**3))
    values = [s(t) for t in range(0, 120)]
    assert values == sorted(values)
    turns = [t for t in range(0, 120) if s.should_prune(t)]
    assert turns == [10, 30, 50, 70, 90, 95]  # 95 is not a multiple of 20 past 10: forced


def test_gradual_beats_one_shot_at_90_percent_on_digits_cnn():
    oneshot, _ = run("digits-cnn", UnstructuredConfig(0.9))
    gradual, _ = run("digits-cnn", GradualConfig(UnstructuredConfig(0.9), epochs=6,
                                                 frequency=7))  # 138 steps, end 83: off-turn
    for la in gradual.layers:
        if la.pruned:
            assert la.params - la.nonzero == round(0.9 * la.params), la.name
    assert gradual.accuracy_before == oneshot.accuracy_before >= 0.97
    assert oneshot.accuracy_after < 0.5  # one-shot at 90% breaks the BN statistics
    assert gradual.accuracy_after >= gradual.accuracy_before - 0.03
    assert gradual.accuracy_after > oneshot.accuracy_after + 0.4


def test_gradual_block_and_masked_finetune_keep_zeros():
    gradual, _ = run("digits-mlp", "gradual:block:4x1:0.8")
    tuned, _ = run("digits-mlp", BlockConfig((4, 1), 0.8, finetune_epochs=3))
    oneshot, _ = run("digits-mlp", BlockConfig((4, 1), 0.8))
    for result in (gradual, tuned, oneshot):
        for la in result.layers:
            if la.pruned:
                assert la.params - la.nonzero == 4 * round(0.8 * la.params / 4), la.name
    assert tuned.accuracy_after > oneshot.accuracy_after
    assert gradual.accuracy_after >= gradual.accuracy_before - 0.02


def test_channel_finetune_recovers_accuracy():
    oneshot, _ = run("digits-cnn", ChannelConfig(0.5))
    tuned, _ = run("digits-cnn", ChannelConfig(0.5, finetune_epochs=5))
    assert tuned.params == oneshot.params < oneshot.params_before
    assert tuned.accuracy_after > max(0.9, oneshot.accuracy_after)


def test_finetune_suffix_round_trips_and_recovers_accuracy():
    from edgebench.models import get_model
    from edgebench.prune import parse_prune, prune

    config = parse_prune("channel:0.5:ft5")
    assert config.finetune_epochs == 5 and parse_prune(config.text) == config
    spec = get_model("digits-cnn")
    one_shot = prune(spec.build(), "channel:0.5", spec.example_input(), spec)
    tuned = prune(spec.build(), config, spec.example_input(), spec)
    assert tuned.params == one_shot.params  # same smaller network ...
    assert tuned.accuracy_after > one_shot.accuracy_after + 0.3  # ... with its accuracy back


# --- the fine-tuning recipe: BN re-estimated, distilled from the FP32 model --------------------

def test_recalibrated_batchnorm_holds_the_train_statistics():
    from edgebench.models.train import recalibrate_batchnorm

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4, momentum=0.0)).eval()
    x = torch.randn(100, 1, 6, 6) * 3 + 1
    assert recalibrate_batchnorm(net, x, batch_size=50) and not net.training
    pre = net[0](x).detach()  # what the BN sees
    bn = net[1]
    assert bn.momentum == 0.0  # restored
    torch.testing.assert_close(bn.running_mean, pre.mean((0, 2, 3)), rtol=1e-5, atol=1e-5)
    # the mean of the two batches' variances: the whole set's, less the batch means' spread
    torch.testing.assert_close(bn.running_var, pre.var((0, 2, 3)), rtol=0.05, atol=0.0)
    assert not recalibrate_batchnorm(nn.Linear(2, 2), torch.randn(4, 2))


def test_distilled_finetune_recovers_80_percent_in_one_epoch_and_says_its_cost():
    """One epoch (23 steps, ~1 s) brings digits-cnn at 80 % back within a point; before the
    BN statistics were re-estimated it stayed 1.7 pt down (97.5 %)."""
    tuned, _ = run("digits-cnn", "unstructured:0.8:ft1")
    oneshot, _ = run("digits-cnn", "unstructured:0.8")
    assert oneshot.metric_after < tuned.metric_before - 5
    assert tuned.metric_after >= tuned.metric_before - 1.0
    assert tuned.train is not None and tuned.train.steps == 23 and tuned.train.distilled
    assert tuned.train.seconds > 0 and "23 steps" in str(tuned.train)
    plain, _ = run("digits-cnn", UnstructuredConfig(0.8, finetune_epochs=1,
                                                    finetune_distill=False))
    assert plain.train is not None and not plain.train.distilled
    assert plain.metric_after != tuned.metric_after or not torch.equal(
        next(plain.model.parameters()), next(tuned.model.parameters()))
    assert oneshot.train is None


def test_distillation_terms_are_zero_at_the_teacher_and_positive_elsewhere():
    from edgebench.data import distill_logits, distill_mse
    from edgebench.models.crepe import distill_probs

    t = torch.randn(8, 10)
    assert float(distill_logits(t, t)) == pytest.approx(0.0, abs=1e-6)
    assert float(distill_logits(t + torch.randn(8, 10), t)) > 0.01
    assert float(distill_mse(t, t)) == 0.0
    p = torch.rand(8, 360)
    assert float(distill_probs(p, p)) < float(distill_probs(p.roll(1, 1), p))
