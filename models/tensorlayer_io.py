"""Read and write tensorlayer `.npz` checkpoints (`net_g.npz`, `net_d.npz`) for Keras 3 models.

    from tfcf.models import dcgan, tensorlayer_io
    generator = tensorlayer_io.load_tensorlayer_npz(dcgan.build_generator("tensorlayer"), "net_g.npz")
    tensorlayer_io.save_tensorlayer_npz(generator, "copy_of_net_g.npz")

tensorlayer's `tl.files.save_npz(network.all_weights, name)` runs `np.savez(name, params=[...])`:
one key `params` holding the arrays in `all_weights` order (a pickled object array, read here with
`tfcf.safeload.load_npz`, never with plain `allow_pickle=True`). The arrays are matched to the
Keras layers in `model.layers` order, recursing into nested models:

    Keras layer          tensorlayer arrays                      Keras weights
    Dense                W (in, out), b                          kernel, bias
    Conv2D               W (kh, kw, in, out), b                  kernel, bias
    Conv2DTranspose      W (kh, kw, out, in), b                  kernel, bias
    BatchNormalization   beta, gamma, moving_mean, moving_var    gamma, beta, moving_mean, moving_variance

(bias, beta or gamma only where the Keras layer has one). Layers without weights are skipped.
"""

import os

import keras
import numpy as np

from tfcf.io import atomic_write
from tfcf.safeload import load_npz

__all__ = ["load_tensorlayer_npz", "save_tensorlayer_npz", "tensorlayer_order"]

_DIRECT_LAYERS = (keras.layers.Dense, keras.layers.Conv2D, keras.layers.Conv2DTranspose)


def _leaf_layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):  # a nested functional or Sequential model
            yield from _leaf_layers(layer)
        else:
            yield layer


def tensorlayer_order(model):
    """The (layer, Keras variable) pairs of `model` in tensorlayer's checkpoint order.

        for layer, variable in tensorlayer_order(generator):
            print(layer.name, variable.path, variable.shape)

    Raises ValueError for a layer with weights that tensorlayer's format does not cover.
    """
    pairs, seen = [], set()
    for layer in _leaf_layers(model):
        if not layer.weights or id(layer) in seen:  # a layer shared by nested models counts once
            continue
        seen.add(id(layer))
        if isinstance(layer, _DIRECT_LAYERS):
            variables = [layer.kernel] + ([layer.bias] if layer.use_bias else [])
        elif isinstance(layer, keras.layers.BatchNormalization):
            variables = ([layer.beta] if layer.center else []) + ([layer.gamma] if layer.scale else [])
            variables += [layer.moving_mean, layer.moving_variance]
        else:
            raise ValueError(
                f"layer {layer.name!r} ({type(layer).__name__}) has weights but no tensorlayer "
                "mapping; supported: Dense, Conv2D, Conv2DTranspose, BatchNormalization"
            )
        pairs.extend((layer, variable) for variable in variables)
    return pairs


def load_tensorlayer_npz(model, path):
    """Assign a tensorlayer `.npz` checkpoint to `model`'s weights, in layer order.

        generator = load_tensorlayer_npz(dcgan.build_generator("tensorlayer"), "net_g.npz")
        images = generator(z, training=False)

    Every array is checked before any is assigned: a count mismatch, or a shape mismatch (naming
    the Keras layer, the array's index and both shapes), raises ValueError and leaves `model`
    untouched. Returns `model`.
    """
    arrays = load_npz(path)
    if "params" not in arrays:
        raise ValueError(f"{os.fspath(path)!r} has no 'params' key (keys: {sorted(arrays)}); "
                         "not a tensorlayer checkpoint")
    params = arrays["params"]
    if isinstance(params, np.ndarray):  # old numpy stacked equal-shaped arrays into one array
        params = list(params)
    pairs = tensorlayer_order(model)
    if len(params) != len(pairs):
        first_unmatched = (
            f"; the first unmatched is Keras layer {pairs[len(params)][0].name!r} "
            f"({pairs[len(params)][1].path}, shape {tuple(pairs[len(params)][1].shape)})"
            if len(params) < len(pairs) else
            f"; the first extra is array {len(pairs)} of shape {np.shape(params[len(pairs)])}"
        )
        raise ValueError(f"{os.fspath(path)!r} holds {len(params)} arrays, model {model.name!r} "
                         f"has {len(pairs)} weights{first_unmatched}")
    for index, ((layer, variable), array) in enumerate(zip(pairs, params)):
        if tuple(np.shape(array)) != tuple(variable.shape):
            raise ValueError(
                f"array {index} of {os.fspath(path)!r} has shape {tuple(np.shape(array))}, the "
                f"Keras layer {layer.name!r} weight {variable.path!r} has {tuple(variable.shape)}"
            )
    for (_, variable), array in zip(pairs, params):
        variable.assign(np.asarray(array, dtype=variable.dtype))
    return model


def save_tensorlayer_npz(model, path):
    """Write `model`'s weights as tensorlayer's `tl.files.save_npz` would (atomically).

        save_tensorlayer_npz(generator, "net_g.npz")      # np.savez(path, params=[...])
        load_tensorlayer_npz(dcgan.build_generator("tensorlayer"), "net_g.npz")

    The arrays, in tensorlayer order (see `tensorlayer_order`), go into a 1-d object array under
    the key `params`. The file is written to a temporary file beside `path`, then renamed.
    """
    path = os.fspath(path)
    arrays = [np.asarray(keras.ops.convert_to_numpy(variable)) for _, variable in tensorlayer_order(model)]
    params = np.empty(len(arrays), dtype=object)
    for index, array in enumerate(arrays):  # element-wise: equal shapes must not broadcast
        params[index] = array
    with atomic_write(path) as stream:
        np.savez(stream, params=params)
    return path
