"""tfcf.graph: the cached graph of a model, its input checks and its upstream walks."""

import keras
import numpy as np
import pytest

import tfcf
from tfcf.graph import flat_graph


def test_flat_graph_and_its_segments_are_built_once(tiny_generator):
    graph = flat_graph(tiny_generator)
    assert flat_graph(tiny_generator) is graph
    cut = graph.resolve("block1")
    (head, tail), states = graph.segments([cut])
    (head_again, tail_again), _ = graph.segments([cut])
    assert head_again is head and tail_again is tail
    assert states[1][:1] == cut
    split = tfcf.split(tiny_generator, "block1")
    assert split.head is head and split.tail is tail


def test_input_arrays_cast_and_check(conditional_generator):
    graph = flat_graph(conditional_generator)
    z, y = np.ones((3, 8)), np.zeros((3, 5))
    arrays = graph.input_arrays([z, y], "base")
    assert [a.dtype for a in arrays] == [np.float32, np.float32]
    np.testing.assert_array_equal(arrays[0], z)
    np.testing.assert_array_equal(arrays[1], y)
    with pytest.raises(ValueError, match=r"source must give 2 array\(s\).*got 1"):
        graph.input_arrays(z, "source")
    with pytest.raises(ValueError, match=r"z array for input 1 \(y\) has shape \(3, 4\).*"
                                         r"expects \(batch, 5\)"):
        graph.input_arrays([z, np.zeros((3, 4))], "z")
    with pytest.raises(ValueError, match=r"base arrays have different batch sizes: \[3, 2\]"):
        graph.input_arrays([z, y[:2]], "base")


def test_producers_and_op_named(nested_generator):
    graph = flat_graph(nested_generator)
    assert [graph.name_of(op) for op in graph.producers(graph.op_named("post"))] == ["shared:1"]
    residual = graph.op_named("block/residual")
    assert [graph.name_of(op) for op in graph.producers(residual)] == ["shared:0", "block/conv_b"]
    assert graph.op_named("conv_b") is graph.op_named("block/conv_b")
    with pytest.raises(ValueError, match="'shared' is called 2 times.*shared:0, shared:1"):
        graph.op_named("shared")


def test_preceding_walks_into_nested_models(nested_generator):
    graph = flat_graph(nested_generator)
    conv = keras.layers.Conv2D
    # conv_b reads relu_a <- bn_a <- conv_a, inside the nested block
    found = graph.preceding(graph.op_named("block/conv_b"), kind=conv,
                            through=(keras.layers.ReLU, keras.layers.BatchNormalization))
    assert [graph.name_of(op) for op in found.ops] == ["block/conv_a"]
    assert [graph.name_of(op) for op in found.passed] == ["block/relu_a", "block/bn_a"]
    assert found.blocked == [] and found.inputs == []
    # the block's input is the output of the first call of `shared`, outside the block
    found = graph.preceding(graph.op_named("block/conv_a"), kind=conv)
    assert [graph.name_of(op) for op in found.ops] == ["shared:0"]
    # the residual add stops a walk that may pass only ReLUs
    found = graph.preceding(graph.op_named("image"), kind=keras.layers.Dense,
                            through=lambda op: isinstance(op.operation, (keras.layers.ReLU,
                                                                         keras.layers.Conv2D)))
    assert found.ops == []
    assert [graph.name_of(op) for op in found.passed] == ["post", "shared:1"]
    assert [graph.name_of(op) for op in found.blocked] == ["block/residual"]
    # a walk through everything ends at the model input
    found = graph.preceding(graph.op_named("image"), kind=(), through=lambda op: True)
    assert found.inputs == graph.inputs and found.blocked == []


def _fade_in(alpha_without_batch_axis):
    """out = low * (1 - a) + high * a with a = alpha[0] (shape (1,)) or a batch-free input."""
    keras.utils.set_random_seed(0)
    z = keras.Input((4,), name="z")
    if alpha_without_batch_axis:
        alpha = keras.Input(batch_shape=(1,), name="alpha")
        a = alpha
    else:
        alpha = keras.Input((1,), name="alpha")
        a = alpha[0]
    h = keras.layers.ReLU(name="block1")(keras.layers.Dense(6, name="lin")(z))
    low = keras.layers.Dense(3, name="low")(h)
    high = keras.layers.Dense(3, name="high")(keras.layers.Dense(5, name="grow")(h))
    return keras.Model([z, alpha], low * (1 - a) + high * a)


def test_tensors_without_batch_axis_are_recomputed_after_the_cut():
    model = _fade_in(False)
    graph = flat_graph(model)
    assert [graph.specs[t].batched for t in graph.inputs] == [True, True]
    # keras.ops calls are named get_item, get_item_1, ... by a process-wide counter
    [row] = [tid for op in graph.ops if op.name.startswith("get_item") for tid in op.outputs]
    [fade] = [tid for op in graph.ops if op.name.startswith("subtract") for tid in op.outputs]
    assert graph.specs[row].shape == (1,) and not graph.batched(row)
    assert not graph.batched(fade)
    (head, tail), states = graph.segments([graph.resolve("block1")])
    # alpha travels with the batch; alpha[0] and 1 - alpha[0] are recomputed in the tail
    assert states[1] == graph.resolve("block1") + [graph.inputs[1]]
    z = np.random.default_rng(0).normal(size=(3, 4)).astype("float32")
    alpha = np.float32([[0.25], [0.5], [0.75]])
    np.testing.assert_allclose(np.asarray(tail(head([z, alpha]))), np.asarray(model([z, alpha])),
                               atol=1e-6)
    # by hand: only alpha[0] = 0.25 counts, for every sample
    h = np.maximum(z @ _kernel(model, "lin") + _bias(model, "lin"), 0)
    low = h @ _kernel(model, "low") + _bias(model, "low")
    high = (h @ _kernel(model, "grow") + _bias(model, "grow")) @ _kernel(model, "high") + _bias(
        model, "high")
    np.testing.assert_allclose(np.asarray(tail(head([z, alpha]))), 0.75 * low + 0.25 * high,
                               atol=1e-5)


def _kernel(model, name):
    return np.asarray(model.get_layer(name).kernel)


def _bias(model, name):
    return np.asarray(model.get_layer(name).bias)


def test_inputs_without_batch_axis_are_taken_whole():
    model = _fade_in(True)
    graph = flat_graph(model)
    assert [graph.specs[t].batched for t in graph.inputs] == [True, False]
    z = np.zeros((3, 4))
    arrays = graph.input_arrays([z, [0.5]], "base")
    assert graph.batch_size(arrays) == 3 and arrays[1].shape == (1,)
    (head, tail), states = graph.segments([graph.resolve("block1")])
    assert states[1] == graph.resolve("block1") + [graph.inputs[1]]
    with pytest.raises(ValueError, match=r"base array for input 1 \(alpha\) has shape \(3, 1\); "
                                         r"the model expects \(1,\) with no batch axis"):
        graph.input_arrays([z, np.zeros((3, 1))], "base")


def test_input_arrays_refuse_non_finite_values_naming_the_input(conditional_generator):
    graph = flat_graph(conditional_generator)
    z, y = np.ones((4, 8)), np.zeros((4, 5))
    y[2, 1], y[3, 0] = np.inf, np.nan
    graph.input_arrays([z, y], "z")                 # not checked unless asked
    with pytest.raises(ValueError, match=r"z array for input 1 \(y\) holds 2 NaN or infinite "
                                         r"value\(s\) \(samples 2, 3\)"):
        graph.input_arrays([z, y], "z", finite=True)


def test_subclassed_model_names_its_functional_submodels():
    from tfcf.graph import functional_submodels

    class AutoEncoder(keras.Model):
        def __init__(self):
            super().__init__()
            code = keras.Input((3,))
            self.decoder = keras.Model(code, keras.layers.Dense(4, name="dec_out")(code),
                                       name="decoder")
            self.scale = 2.0

        def call(self, x):
            return self.decoder(x) * self.scale

    model = AutoEncoder()
    model(np.zeros((1, 3)))
    assert functional_submodels(model) == [("decoder", model.decoder)]
    with pytest.raises(TypeError, match=r"model\.decoder \(Functional 'decoder'\); e\.g\. "
                                        r"tfcf\.split\(model\.decoder, 'dec_out'\)"):
        flat_graph(model)
