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
