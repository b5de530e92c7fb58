"""OpenVINO/ONNX graphs -> Keras: each op kind against OpenVINO's own CPU inference (float32).

Every graph is built here with OpenVINO's opset API (or the ONNX helper API), exported at batch 1
as MobileStyleGAN's IR is, converted with tfcf.openvino_import and run at batch 1 and at batch 3
(OpenVINO reshaped to batch 3 recomputes its ShapeOf chains; the Keras model was converted once at
batch 1). Outputs must agree to 1e-5. The ONNX model is also checked against ONNX's own reference
evaluator, which shares no code with OpenVINO.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("openvino") is None,
                                reason="needs OpenVINO: pip install openvino (extra [openvino])")

if importlib.util.find_spec("openvino") is not None:
    import openvino as ov
    import openvino.opset13 as ops

    import tfcf
    from tfcf import openvino_layers
    from tfcf.openvino_import import UnsupportedOpError, from_openvino, keras_name, op_types

HERE = Path(__file__).resolve().parent
ATOL = 1e-5  # plus a relative 1e-6 (one float32 ulp) for values far from 1


def _f32(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype("float32")


def _to_keras(array):
    return array.transpose((0,) + tuple(range(2, array.ndim)) + (1,)) if array.ndim >= 3 else array


def _run_openvino(model, feeds, batch):
    model = model.clone()
    if batch != 1:
        model.reshape({p.output(0): ov.PartialShape([batch] + list(p.get_partial_shape())[1:])
                       for p in model.get_parameters()})
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    result = compiled([feeds[p.get_friendly_name()] for p in model.get_parameters()])
    return [np.asarray(result[o]) for o in compiled.outputs]


def _assert_matches_openvino(model, feeds, batches=(1, 3), atol=ATOL):
    """Convert ``model`` (batch 1) and compare with OpenVINO at each batch size."""
    converted = from_openvino(model)
    rng = np.random.default_rng(1)
    for batch in batches:
        values = {name: (value if batch == 1 else
                         np.concatenate([value] + [_f32(rng, *value.shape[1:])[None] * value.std()
                                                   for _ in range(batch - 1)]))
                  for name, value in feeds.items()}
        expected = _run_openvino(model, values, batch)
        args = [_to_keras(values[p.get_friendly_name()]) for p in model.get_parameters()]
        ours = converted(args if len(args) > 1 else args[0])
        ours = ours if isinstance(ours, (list, tuple)) else [ours]
        for want, got in zip(expected, ours):
            np.testing.assert_allclose(np.asarray(got), _to_keras(want), atol=atol, rtol=1e-6)
    return converted


def _model(outputs, parameters, name="test"):
    outputs = outputs if isinstance(outputs, list) else [outputs]
    return ov.Model([ops.result(o) for o in outputs], parameters, name)


def _param(name, shape):
    node = ops.parameter(shape, np.float32, name=name)
    node.set_friendly_name(name)
    return node


def _named(node, name):
    node.set_friendly_name(name)
    return node


def _layer_types(model):
    return {layer.name: type(layer).__name__ for layer in model.layers}


# ----------------------------------------------------------------------------- convolutions
@pytest.mark.parametrize("kernel,stride,pads,dilation,expected", [
    (3, 1, ([1, 1], [1, 1]), 1, "same"),
    (1, 1, ([0, 0], [0, 0]), 1, "valid"),
    (3, 2, ([0, 1], [1, 0]), 1, "pad"),
    (3, 1, ([2, 2], [2, 2]), 2, "same"),
])
def test_convolution(kernel, stride, pads, dilation, expected):
    rng = np.random.default_rng(0)
    x = _param("x", [1, 4, 9, 9])
    weights = ops.constant(_f32(rng, 6, 4, kernel, kernel))
    conv = _named(ops.convolution(x, weights, [stride] * 2, pads[0], pads[1], [dilation] * 2),
                  "block/conv")
    model = _assert_matches_openvino(_model(conv, [x]), {"x": _f32(rng, 1, 4, 9, 9)})
    layer = model.get_layer("block_conv")
    assert isinstance(layer, keras.layers.Conv2D)
    assert layer.padding == ("valid" if expected == "pad" else expected)
    assert ("block_conv_pad" in _layer_types(model)) == (expected == "pad")


@pytest.mark.parametrize("groups,in_per_group,out_per_group,kind", [
    (4, 1, 1, "DepthwiseConv2D"), (4, 1, 2, "DepthwiseConv2D"), (2, 2, 3, "Conv2D"),
])
def test_group_convolution(groups, in_per_group, out_per_group, kind):
    rng = np.random.default_rng(0)
    channels = groups * in_per_group
    x = _param("x", [1, channels, 8, 8])
    weights = ops.constant(_f32(rng, groups, out_per_group, in_per_group, 3, 3))
    conv = _named(ops.group_convolution(x, weights, [1, 1], [1, 1], [1, 1], [1, 1]), "dw")
    model = _assert_matches_openvino(_model(conv, [x]), {"x": _f32(rng, 1, channels, 8, 8)})
    assert _layer_types(model)["dw"] == kind


@pytest.mark.parametrize("kernel,stride,pads,output_padding", [
    (4, 2, [1, 1], [0, 0]), (2, 2, [0, 0], [0, 0]), (3, 2, [1, 1], [1, 1]), (3, 1, [0, 0], [0, 0]),
])
def test_convolution_backprop_data(kernel, stride, pads, output_padding):
    rng = np.random.default_rng(0)
    x = _param("x", [1, 5, 6, 7])
    weights = ops.constant(_f32(rng, 5, 3, kernel, kernel))
    deconv = _named(ops.convolution_backprop_data(
        x, weights, [stride] * 2, pads_begin=pads, pads_end=pads, output_padding=output_padding),
        "deconv")
    model = _assert_matches_openvino(_model(deconv, [x]), {"x": _f32(rng, 1, 5, 6, 7)})
    assert "deconv" in _layer_types(model)


@pytest.mark.parametrize("groups,in_per_group,out_per_group,kernel,stride,pads,extra", [
    (6, 1, 1, (2, 1), (2, 1), [0, 0], [0, 0]),    # MobileStyleGAN's inverse-wavelet step
    (6, 1, 1, (1, 2), (1, 2), [0, 0], [0, 0]),
    (6, 1, 1, (3, 3), (2, 2), [0, 0], [0, 0]),    # overlapping taps: zeros inserted
    (6, 1, 1, (4, 3), (2, 1), [1, 1], [1, 0]),    # padding (cropped) and output padding
    (6, 1, 1, (3, 3), (1, 1), [1, 1], [0, 0]),
    (2, 2, 3, (3, 3), (2, 2), [0, 0], [0, 0]),    # several channels per group: block-diagonal
])
def test_group_convolution_backprop_data(groups, in_per_group, out_per_group, kernel, stride,
                                         pads, extra):
    rng = np.random.default_rng(0)
    channels = groups * in_per_group
    x = _param("x", [1, channels, 5, 4])
    weights = ops.constant(_f32(rng, groups, in_per_group, out_per_group, *kernel))
    deconv = _named(ops.group_convolution_backprop_data(
        x, weights, list(stride), pads_begin=pads, pads_end=pads, output_padding=extra), "idwt")
    model = _assert_matches_openvino(_model(deconv, [x]), {"x": _f32(rng, 1, channels, 5, 4)})
    full = model.get_layer("idwt_full" if any(pads) else "idwt")
    depthwise = in_per_group == out_per_group == 1
    assert isinstance(full, openvino_layers.DepthwiseConvTranspose if depthwise
                      else keras.layers.Conv2DTranspose)
    if depthwise:    # one weight per channel and tap, not a channels x channels kernel
        assert tuple(full.kernel.shape) == tuple(kernel) + (channels,)


def test_depthwise_transposed_convolution_1d_and_batch():
    """The layer alone: 1 and 2 spatial axes, a batch of 3, both forms against a dense
    Conv1DTranspose / Conv2DTranspose with the diagonal kernel."""
    rng = np.random.default_rng(1)
    for kernel, stride, extra in [((2,), (2,), (0,)), ((3,), (2,), (1,)), ((2, 2), (2, 2), (0, 0)),
                                  ((3, 2), (2, 2), (1, 0))]:
        x = _f32(rng, 3, *([5] * len(kernel)), 4)
        layer = openvino_layers.DepthwiseConvTranspose(kernel, stride, output_padding=extra)
        layer.build(x.shape)
        taps = _f32(rng, *kernel, 4)
        layer.set_weights([taps])
        dense = np.zeros(kernel + (4, 4), dtype="float32")
        for c in range(4):
            dense[..., c, c] = taps[..., c]
        cls = keras.layers.Conv1DTranspose if len(kernel) == 1 else keras.layers.Conv2DTranspose
        reference = cls(4, kernel, strides=stride, padding="valid", use_bias=False,
                        output_padding=extra[0] if len(kernel) == 1 else extra)
        reference.build(x.shape)
        reference.set_weights([dense])
        ours = np.asarray(layer(x))
        assert ours.shape == layer.compute_output_shape(x.shape)
        np.testing.assert_allclose(ours, np.asarray(reference(x)), rtol=1e-5, atol=1e-5)


def test_conv1d():
    rng = np.random.default_rng(0)
    x = _param("x", [1, 4, 10])
    conv = ops.convolution(x, ops.constant(_f32(rng, 3, 4, 3)), [1], [1], [1], [1])
    model = _assert_matches_openvino(_model(conv, [x]), {"x": _f32(rng, 1, 4, 10)})
    assert any(isinstance(layer, keras.layers.Conv1D) for layer in model.layers)


# ----------------------------------------------------------------------------- dense, element-wise
@pytest.mark.parametrize("transpose_b", [True, False])
def test_matmul_and_bias(transpose_b):
    rng = np.random.default_rng(0)
    x = _param("z", [1, 6])
    weight = _f32(rng, 5, 6) if transpose_b else _f32(rng, 6, 5)
    product = _named(ops.matmul(x, ops.constant(weight), False, transpose_b), "Gemm/WithoutBiases")
    out = _named(ops.add(product, ops.constant(_f32(rng, 1, 5))), "Gemm")
    model = _assert_matches_openvino(_model(out, [x]), {"z": _f32(rng, 1, 6)})
    assert isinstance(model.get_layer("Gemm_WithoutBiases"), keras.layers.Dense)
    assert isinstance(model.get_layer("Gemm"), openvino_layers.ConstantOp)


@pytest.mark.parametrize("kind", ["add", "subtract", "multiply", "divide", "maximum", "minimum"])
@pytest.mark.parametrize("constant_shape", [(1, 1, 1, 1), (1, 3, 1, 1), (1, 1, 4, 5), (5,)])
def test_elementwise_with_constants(kind, constant_shape):
    rng = np.random.default_rng(0)
    x = _param("x", [1, 3, 4, 5])
    constant = ops.constant(np.abs(_f32(rng, *constant_shape)) + 0.5)
    left = getattr(ops, kind)(x, constant)
    right = getattr(ops, kind)(constant, left)
    _assert_matches_openvino(_model(right, [x]), {"x": np.abs(_f32(rng, 1, 3, 4, 5)) + 0.5})


@pytest.mark.parametrize("kind", ["add", "subtract", "multiply", "divide", "maximum", "power"])
def test_elementwise_between_tensors_broadcast(kind):
    rng = np.random.default_rng(0)
    x = _param("x", [1, 3, 4, 5])
    s = _param("s", [1, 3])
    scale = ops.reshape(s, ops.constant(np.array([0, 3, 1, 1], np.int64)), True)
    base = ops.add(ops.multiply(x, x), ops.constant(np.float32(0.5))) if kind == "power" else x
    out = getattr(ops, kind)(base, scale)
    _assert_matches_openvino(_model(out, [x, s]), {"x": _f32(rng, 1, 3, 4, 5), "s": np.abs(_f32(rng, 1, 3)) + 0.5})


@pytest.mark.parametrize("slope_shape", [(1,), (3,), (1, 3, 1, 1)])
def test_prelu(slope_shape):
    rng = np.random.default_rng(0)
    x = _param("x", [1, 3, 4, 4])
    out = _named(ops.prelu(x, ops.constant(np.abs(_f32(rng, *slope_shape)))), "LeakyRelu_1")
    model = _assert_matches_openvino(_model(out, [x]), {"x": _f32(rng, 1, 3, 4, 4)})
    expected = keras.layers.LeakyReLU if slope_shape == (1,) else keras.layers.PReLU
    assert isinstance(model.get_layer("LeakyRelu_1"), expected)


def test_activations_and_unary():
    rng = np.random.default_rng(0)
    x = _param("x", [1, 3, 4, 4])
    out = ops.tanh(ops.sigmoid(ops.relu(x)))
    out = ops.add(out, ops.elu(x, 0.7))
    out = ops.add(out, ops.sqrt(ops.abs(x)))
    out = ops.add(out, ops.clamp(x, -0.5, 0.25))
    out = ops.add(out, ops.exp(ops.negative(ops.abs(x))))
    _assert_matches_openvino(_model(out, [x]), {"x": _f32(rng, 1, 3, 4, 4)})


def test_pixel_norm_power_reduce_mean():
    """The mapping network's first op: x / sqrt(mean(x^2) + eps), as Power/ReduceMean chains."""
    rng = np.random.default_rng(0)
    x = _param("var", [1, 8])
    mean = ops.reduce_mean(ops.power(x, ops.constant(np.float32([[2.0]]))),
                           ops.constant(np.int64([1])), True)
    root = ops.power(ops.add(mean, ops.constant(np.float32([[1e-8]]))),
                     ops.constant(np.float32([[0.5]])))
    out = ops.multiply(x, ops.power(root, ops.constant(np.float32([[-1.0]]))))
    _assert_matches_openvino(_model(out, [x]), {"var": _f32(rng, 1, 8)})


@pytest.mark.parametrize("keep_dims", [True, False])
@pytest.mark.parametrize("kind", ["reduce_mean", "reduce_sum", "reduce_max"])
def test_reductions(kind, keep_dims):
    rng = np.random.default_rng(0)
    x = _param("x", [1, 3, 4, 5])
    out = getattr(ops, kind)(x, ops.constant(np.int64([2, 3])), keep_dims)
    _assert_matches_openvino(_model(out, [x]), {"x": _f32(rng, 1, 3, 4, 5)})


# ----------------------------------------------------------------------------- shapes and layout
def _batch_shape(tensor, tail):
    """[batch of ``tensor``, *tail] as MobileStyleGAN's IR computes it (ShapeOf/Gather/Concat)."""
    batch = ops.gather(ops.shape_of(tensor), ops.constant(np.int64(0)), ops.constant(np.int64(0)))
    parts = [ops.unsqueeze(batch, ops.constant(np.int64([0])))]
    parts += [ops.constant(np.int64([d])) for d in tail]
    return ops.concat(parts, 0)


def test_inverse_wavelet_split_squeeze_concat():
    """[B, 3C, H, W] -> [B, C, 3, H, W] -> split on axis 2 -> squeeze -> up-sample -> concat."""
    rng = np.random.default_rng(0)
    channels, size = 4, 6
    x = _param("x", [1, 4 * channels, size, size])
    low, high = ops.variadic_split(x, ops.constant(np.int64(1)),
                                   ops.constant(np.int64([channels, 3 * channels]))).outputs()
    shape = ops.concat([ops.unsqueeze(ops.gather(ops.shape_of(x), ops.constant(np.int64(0)),
                                                 ops.constant(np.int64(0))),
                                      ops.constant(np.int64([0]))),
                        ops.constant(np.int64([channels, 3, size, size]))], 0)
    bands = ops.variadic_split(ops.reshape(high, shape, True), ops.constant(np.int64(2)),
                               ops.constant(np.int64([1, 1, 1]))).outputs()
    pieces = [ops.squeeze(band, ops.constant(np.int64([2]))) for band in bands]
    weights = ops.constant(_f32(rng, channels, 1, 1, 2, 1))
    up = [ops.group_convolution_backprop_data(p, weights, [2, 1], pads_begin=[0, 0],
                                              pads_end=[0, 0]) for p in [low] + pieces]
    out = ops.concat([ops.add(up[0], up[1]), ops.multiply(up[2], up[3])], 1)
    model = _assert_matches_openvino(_model(out, [x]), {"x": _f32(rng, 1, 4 * channels, size, size)})
    assert not any(isinstance(layer, keras.layers.Permute) for layer in model.layers)


def test_transpose_gather_unsqueeze_and_a_real_permute():
    rng = np.random.default_rng(0)
    x = _param("x", [1, 3, 4, 5])
    t = ops.transpose(x, ops.constant(np.int64([0, 2, 3, 1])))            # logical NHWC
    picked = ops.gather(t, ops.constant(np.int64([2, 0])), ops.constant(np.int64(3)))
    flat = ops.reshape(picked, ops.constant(np.int64([0, 40])), True)  # needs NHWC order
    out = ops.unsqueeze(ops.relu(flat), ops.constant(np.int64([2])))
    _assert_matches_openvino(_model(out, [x]), {"x": _f32(rng, 1, 3, 4, 5)})


def test_learned_constant_tiled_to_the_batch():
    """StyleGAN's 4x4 input: a constant tiled by the batch size of the style."""
    rng = np.random.default_rng(0)
    style = _param("style", [1, 6])
    constant = ops.constant(_f32(rng, 1, 4, 3, 3))
    repeats = _batch_shape(style, [1, 1, 1])
    ones = ops.broadcast(ops.constant(np.int64(1)), ops.shape_of(repeats))
    expanded = ops.broadcast(constant, ones, broadcast_spec="BIDIRECTIONAL")
    tiled = _named(ops.tile(expanded, repeats), "Tile_10")
    scale = ops.reshape(ops.matmul(style, ops.constant(_f32(rng, 4, 6)), False, True),
                        _batch_shape(style, [4, 1, 1]), True)
    broadcast = ops.broadcast(ops.constant(_f32(rng, 1, 1, 3)), _batch_shape(style, [2, 3, 3]))
    out = ops.concat([ops.multiply(scale, tiled), broadcast], 1)
    model = _assert_matches_openvino(_model(out, [style]), {"style": _f32(rng, 1, 6)})
    assert isinstance(model.get_layer("Tile_10"), openvino_layers.BatchConstant)


def test_tile_and_broadcast_of_a_tensor():
    rng = np.random.default_rng(0)
    x = _param("x", [1, 2, 1, 3])
    tiled = ops.tile(x, ops.constant(np.int64([1, 1, 5, 1])))
    out = ops.add(tiled, ops.broadcast(x, _batch_shape(x, [2, 5, 3])))
    _assert_matches_openvino(_model(out, [x]), {"x": _f32(rng, 1, 2, 1, 3)})


def modulated_block(rng, channels=4, size=6, style_dim=5):
    """One MobileStyleGAN block: the style's affine map scales the activations (depthwise 3x3,
    pointwise 1x1, a noise map, a bias, PReLU) and, by another affine map, the block's output."""
    style = _param("style", [1, style_dim])
    x = _param("x", [1, channels, size, size])

    def modulation(name, width):
        affine = ops.add(ops.matmul(style, ops.constant(_f32(rng, width, style_dim)), False, True),
                         ops.constant(_f32(rng, width)))
        reshaped = ops.reshape(_named(affine, name), _batch_shape(x, [width, 1, 1]), True)
        return ops.multiply(reshaped, ops.constant(np.float32([[[[0.5]]]])))

    h = ops.multiply(modulation("Gemm_1", channels), x)
    h = _named(ops.group_convolution(h, ops.constant(_f32(rng, channels, 1, 1, 3, 3)),
                                     [1, 1], [1, 1], [1, 1], [1, 1]), "Conv_dw")
    h = _named(ops.convolution(h, ops.constant(_f32(rng, 2 * channels, channels, 1, 1)),
                               [1, 1], [0, 0], [0, 0], [1, 1]), "Conv_pw")
    h = ops.add(h, ops.constant(_f32(rng, 1, 1, size, size)))
    h = ops.add(h, ops.constant(_f32(rng, 1, 2 * channels, 1, 1)))
    h = _named(ops.prelu(h, ops.constant(np.float32([0.2]))), "LeakyRelu_1")
    out = _named(ops.multiply(modulation("Gemm_2", 2 * channels), h), "img")
    return _model(out, [style, x], "block")


def test_modulated_convolution_block():
    rng = np.random.default_rng(0)
    block = modulated_block(rng)
    model = _assert_matches_openvino(block, {"style": _f32(rng, 1, 5), "x": _f32(rng, 1, 4, 6, 6)})
    types = _layer_types(model)
    assert types["Conv_dw"] == "DepthwiseConv2D" and types["Conv_pw"] == "Conv2D"
    assert types["LeakyRelu_1"] == "LeakyReLU" and types["Gemm_1"] == "ConstantOp"


def test_cut_carries_the_style_into_the_tail():
    """A hybrid at LeakyRelu_1 swaps the activations only: the tail's modulation still comes from
    the base sample's style, computed by hand from the base run's own intermediate layers."""
    rng = np.random.default_rng(0)
    model = from_openvino(modulated_block(rng))
    style = _f32(rng, 4, 5)
    x = _to_keras(_f32(rng, 4, 4, 6, 6))
    base, source = [style[:2], x[:2]], [style[2:], x[2:]]
    ours = tfcf.hybrid(model, "LeakyRelu_1", [1, 6], base=base, source=source)
    probe = keras.Model(model.inputs, [model.get_layer("LeakyRelu_1").output,
                                       model.get_layer("img").input[0]])
    activation_base, scale_base = (np.asarray(v) for v in probe(base))
    activation_source, _ = (np.asarray(v) for v in probe(source))
    mixed = activation_base.copy()
    mixed[..., [1, 6]] = activation_source[..., [1, 6]]
    np.testing.assert_allclose(ours, scale_base * mixed, atol=1e-5)
    assert tfcf.split(model, "LeakyRelu_1").carried      # the style's modulation crosses the cut


def test_linear_shortcut_through_a_converted_modulated_block():
    """A cut before the block's pointwise convolution, after the style's modulation and the
    depthwise convolution: influence maps form their hybrids at Conv_pw through the converted
    layers and equal the generic path (elementary maps and modules)."""
    from tfcf.influence import shortcut_layer

    rng = np.random.default_rng(0)
    model = from_openvino(modulated_block(rng))
    assert shortcut_layer(model, "Conv_dw") == "Conv_pw"
    inputs = [_f32(rng, 10, 5), _to_keras(_f32(rng, 10, 4, 6, 6))]
    for channels in (None, [[0, 1], [2, 3], [1]]):
        options = dict(channels=channels, num_pairs=12, seed=1, progress=False, batch_size=16)
        ours, record = tfcf.influence_maps(model, "Conv_dw", inputs, return_record=True,
                                           **options)
        generic = tfcf.influence_maps(model, "Conv_dw", inputs, method="generic", **options)
        assert record.method == "linear" and record.shortcut == "Conv_pw"
        assert generic.max() > 1e-3
        np.testing.assert_allclose(ours, generic, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- ONNX, names, errors
def _onnx_model(path, dynamic_batch=False):
    """A tiny ONNX generator: Gemm -> Reshape -> ConvTranspose(+bias) -> PRelu -> Conv -> Add ->
    Tanh, built with the onnx helper API."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    batch = "N" if dynamic_batch else 1
    initializers = {
        "gw": _f32(rng, 16, 10), "gb": _f32(rng, 16), "shape": np.array([-1, 4, 2, 2], np.int64),
        "uw": _f32(rng, 4, 4, 4, 4), "ub": _f32(rng, 4), "slope": np.float32([0.1]),
        "cw": _f32(rng, 3, 4, 3, 3), "cb": _f32(rng, 1, 3, 1, 1),
    }
    nodes = [
        helper.make_node("Gemm", ["z", "gw", "gb"], ["g"], name="fc", transB=1),
        helper.make_node("Reshape", ["g", "shape"], ["r"], name="fc/reshape"),
        helper.make_node("ConvTranspose", ["r", "uw", "ub"], ["u"], name="up", strides=[2, 2],
                         pads=[1, 1, 1, 1]),
        helper.make_node("PRelu", ["u", "slope"], ["a"], name="act"),
        helper.make_node("Conv", ["a", "cw"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c", "cb"], ["biased"], name="bias"),
        helper.make_node("Tanh", ["biased"], ["image"], name="image"),
    ]
    graph = helper.make_graph(
        nodes, "tiny_generator",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [batch, 10])],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, 3, 4, 4])],
        [numpy_helper.from_array(value, name) for name, value in initializers.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


@pytest.mark.skipif(importlib.util.find_spec("onnx") is None, reason="needs onnx")
@pytest.mark.parametrize("dynamic_batch", [False, True])
def test_onnx_model_matches_openvino_and_onnx_reference(tmp_path, dynamic_batch):
    from onnx.reference import ReferenceEvaluator

    path = _onnx_model(tmp_path / "tiny.onnx", dynamic_batch)
    model = from_openvino(path)
    z = _f32(np.random.default_rng(3), 5, 10)
    ours = np.asarray(model(z))
    evaluator = ReferenceEvaluator(str(path))
    reference = np.concatenate([evaluator.run(None, {"z": z[i:i + 1]})[0] for i in range(len(z))])
    np.testing.assert_allclose(ours, _to_keras(reference), atol=ATOL, rtol=0)
    openvino_model = ov.Core().read_model(str(path))
    if not dynamic_batch:
        expected = _run_openvino(openvino_model, {"z": z}, len(z))[0]
        np.testing.assert_allclose(ours, _to_keras(expected), atol=ATOL, rtol=0)
    # OpenVINO's ONNX reader splits ConvTranspose-with-bias in two; the node's name goes to the
    # op that produces its output (the bias Add).
    assert sum(isinstance(layer, keras.layers.Conv2DTranspose) for layer in model.layers) == 1
    assert isinstance(model.get_layer("up"), openvino_layers.ConstantOp)
    assert isinstance(model.get_layer("fc_reshape"), keras.layers.Reshape)
    assert op_types(path)["Convolution-opset1"] == 1


def test_slash_names_map_to_underscores_and_split_accepts_both():
    rng = np.random.default_rng(0)
    x = _param("x", [1, 2, 4, 4])
    a = _named(ops.relu(x), "block/act")
    b = _named(ops.relu(ops.negative(x)), "block_act")         # collides once mapped
    model = from_openvino(_model(ops.add(a, b), [x]))
    names = [layer.name for layer in model.layers]
    assert keras_name("Gemm_743/WithoutBiases") == "Gemm_743_WithoutBiases"
    assert "block_act" in names and "block_act_1" in names
    head_a = tfcf.split(model, "block/act").head(_to_keras(_f32(rng, 1, 2, 4, 4)))
    assert np.asarray(head_a).min() >= 0


def test_unsupported_op_names_the_op_and_the_node():
    x = _param("x", [1, 4])
    out = _named(ops.softmax(x, 1), "my_softmax")
    with pytest.raises(UnsupportedOpError, match=r"Softmax \(node 'my_softmax'\)"):
        from_openvino(_model(out, [x]))


def test_batch_arithmetic_is_refused():
    x = _param("x", [1, 4])
    twice = ops.multiply(ops.shape_of(x), ops.constant(np.int64([2, 1])))
    out = ops.reshape(ops.concat([x, x], 1), twice, False)
    with pytest.raises(UnsupportedOpError, match="batch"):
        from_openvino(_model(out, [x]))


def test_converted_model_saves_and_loads_without_the_converter(tmp_path):
    rng = np.random.default_rng(0)
    model = from_openvino(modulated_block(rng))
    path = tmp_path / "block.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    inputs = [_f32(rng, 2, 5), _to_keras(_f32(rng, 2, 4, 6, 6))]
    np.testing.assert_array_equal(np.asarray(loaded(inputs)), np.asarray(model(inputs)))


@pytest.mark.jax
@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_the_golden_tests_pass_under_jax():
    """About 45 s of CPU (a fresh interpreter under KERAS_BACKEND=jax): marked slow."""
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not jax",
         str(HERE / "test_openvino_import.py"),
         "-k", "not onnx and not elementwise_with_constants and not test_prelu"],
        cwd=HERE.parent, env=env, capture_output=True, text=True, timeout=600)
    tail = result.stdout[-3000:] + result.stderr[-2000:]
    assert result.returncode == 0, tail
    assert " passed" in result.stdout and "failed" not in result.stdout, tail
