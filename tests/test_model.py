"""The block module, the network presets and the profiler."""

from __future__ import annotations

import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from blockqnn import blocks, model, nsc, profile
from blockqnn.space import NSCSpace, walk

SMALL = model.cifar(widths=(4, 8), repeats=1, image_size=8)


@pytest.mark.parametrize("name", blocks.names())
def test_every_named_block_builds_and_runs(name):
    net = model.build(blocks.get(name), model.cifar(widths=(8, 16, 32), repeats=2))
    out = net(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()
    assert net.codes == blocks.KNOWN[name]


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10**9))
def test_legal_trajectories_build_and_forward(seed):
    space, rng = NSCSpace(max_index=10), random.Random(seed)
    block = space.architecture(walk(space, lambda s, acts: rng.choice(acts)))
    net = model.build(block, SMALL)
    out = net(torch.randn(2, 3, 8, 8))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


def test_block_keeps_spatial_size_and_maps_to_width():
    block = blocks.get("multi_branch")
    module = model.BlockModule(block, in_channels=5, width=12)
    assert module(torch.randn(2, 5, 7, 7)).shape == (2, 12, 7, 7)


def test_add_projects_only_when_channels_differ():
    mixed = model.Add([5, 12], width=12)
    assert isinstance(mixed.proj[0], torch.nn.Sequential)  # 1x1 PCC 5 -> 12
    assert isinstance(mixed.proj[1], torch.nn.Identity)
    assert mixed.out_channels == 12
    same = model.Add([5, 5], width=12)
    assert all(isinstance(p, torch.nn.Identity) for p in same.proj)
    assert same.out_channels == 5


def test_pcc_order_is_relu_conv_bn():
    cell = model.pcc(3, 4, 5)
    assert [type(m).__name__ for m in cell] == ["ReLU", "Conv2d", "BatchNorm2d"]
    assert cell[1].padding == (2, 2) and cell[1].stride == (1, 1)


def test_stages_pool_and_double():
    net = model.build(blocks.get("shortcut"), model.cifar())
    pools = [m for m in net.features if isinstance(m, torch.nn.MaxPool2d)]
    assert len(pools) == 2
    stages = [m for m in net.features if isinstance(m, model.BlockModule)]
    assert len(stages) == 12
    assert [s.output.out_channels for s in stages[::4]] == [32, 64, 128]


def test_imagenet_preset_downsamples_before_blocks():
    config = model.imagenet(widths=(8, 16, 16, 16), repeats=1, num_classes=7)
    net = model.build(blocks.get("shortcut"), config)
    first_block = next(m for m in net.features if isinstance(m, model.BlockModule))
    seen = {}
    first_block.register_forward_hook(lambda m, i, o: seen.update(shape=o.shape))
    out = net(torch.randn(1, 3, 224, 224))
    assert out.shape == (1, 7)
    assert seen["shape"][-1] == 56  # 224 / 4 before the first block
    assert config.repeats == 1 and model.imagenet().repeats == 3
    assert model.imagenet().widths == (64, 128, 256, 512)


def test_he_initialisation():
    net = model.build(blocks.get("shortcut"), model.cifar(widths=(64,), repeats=1))
    conv = net.features[1].nodes[1][1]  # conv 3x3 of layer 2
    expected_std = (2 / (64 * 9)) ** 0.5  # fan_out = out_channels * k * k
    assert conv.weight.std().item() == pytest.approx(expected_std, rel=0.1)


def test_flops_and_params_match_hand_computation():
    config = model.cifar(widths=(4,), repeats=1, in_channels=1, image_size=4, num_classes=2)
    prof = profile.profile("(1,1,3,0,0) (2,7,0,0,0)", config)
    # MACs: stem 3x3 1->4 on 4x4: 16*4*9 = 576; block conv 3x3 4->4: 16*4*4*9 = 2304;
    # output 1x1 PCC 4->4: 16*16 = 256; linear 4->2: 8. FLOPs = 2 x MACs.
    assert prof.flops == 2 * (576 + 2304 + 256 + 8)
    # params: stem 36 + BN 8; conv 144 + BN 8; output 16 + BN 8; linear 8 + 2 biases
    assert prof.params == 36 + 8 + 144 + 8 + 16 + 8 + 8 + 2
    assert prof.density == pytest.approx(2 / 3)


def test_flops_of_two_stages_follow_pooling():
    config = model.cifar(widths=(2, 4), repeats=1, in_channels=1, image_size=4, num_classes=3)
    prof = profile.profile("(1,1,1,0,0) (2,7,0,0,0)", config)
    # stem 16*2*9 = 288; stage 1 on 4x4: conv 1x1 2->2 = 64, output 2->2 = 64;
    # stage 2 on 2x2: conv 1x1 2->4 = 32, output 4->4 = 64; linear 4->3 = 12
    assert prof.flops == 2 * (288 + 64 + 64 + 32 + 64 + 12)
    assert prof.gflops == pytest.approx(prof.flops / 1e9)


def test_invalid_codes_do_not_build():
    with pytest.raises(nsc.NSCError, match="layer 2"):
        model.build("(1,4,0,0,0) (2,5,0,1,1) (3,7,0,0,0)")


def test_bad_network_config():
    with pytest.raises(ValueError, match="unknown preset"):
        model.NetworkConfig(preset="mnist")
    with pytest.raises(ValueError, match="repeats"):
        model.cifar(repeats=0)
    config = model.cifar(repeats=2)
    assert model.NetworkConfig.from_dict(config.to_dict()) == config


def test_more_stages_than_the_image_allows_are_refused():
    model.cifar(widths=(8, 16, 32, 64, 128, 256))  # 32 -> 1 pixel at stage 6: fits
    with pytest.raises(ValueError, match="no pixel left for stage 7: give at most 6 widths"):
        model.cifar(widths=(8, 16, 32, 64, 128, 256, 512))
    with pytest.raises(ValueError, match=r"8 after the imagenet stem.*at most 4 widths"):
        model.imagenet(image_size=32, widths=(8, 16, 32, 64, 128))
    with pytest.raises(ValueError, match="image size"):
        model.cifar(image_size=0)


def test_separate_components_space_builds_bare_convs():
    block = nsc.parse("(1,8,0,0,0) (2,1,3,1,0) (3,9,0,2,0) (4,7,0,0,0)")
    plain = model.build(block, model.cifar(widths=(4,), repeats=1, conv="plain"))
    first = plain.features[1]
    assert [type(m).__name__ for m in first.nodes] == ["ReLU", "Conv2d", "BatchNorm2d"]
    assert plain(torch.randn(2, 3, 8, 8)).shape == (2, 10)
    pcc_net = model.build(block, model.cifar(widths=(4,), repeats=1))
    assert isinstance(pcc_net.features[1].nodes[1], torch.nn.Sequential)
    with pytest.raises(ValueError, match="unknown conv"):
        model.cifar(conv="depthwise")


def test_separate_types_only_in_the_separate_space():
    pcc_types = {a.type for a in NSCSpace().actions(nsc.Layer(2, 1, 3, 1, 0))}
    sep_types = {
        a.type for a in NSCSpace(types=nsc.SEPARATE_TYPES).actions(nsc.Layer(2, 1, 3, 1, 0))
    }
    assert 8 not in pcc_types and 9 not in pcc_types
    assert {8, 9} <= sep_types


def test_types_outside_the_space_are_refused_by_validation():
    text = "(1,1,3,0,0) (2,8,0,1,0) (3,7,0,0,0)"
    with pytest.raises(nsc.NSCError, match=r"layer 2: type 8 \(RELU\) is not in this space"):
        nsc.parse(text, types=nsc.PCC_TYPES)
    with pytest.raises(nsc.NSCError, match="layer 2: type 8"):
        NSCSpace().parse(text)
    assert NSCSpace(types=nsc.SEPARATE_TYPES).parse(text) == nsc.parse(text)
    with pytest.raises(nsc.NSCError, match=r"layer 1: type 2 .*allowed types: 1, 4"):
        nsc.parse("(1,2,3,0,0) (2,7,0,0,0)", types=(1, 4))
