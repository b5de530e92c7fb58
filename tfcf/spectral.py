"""Spectral dependency ratios (SDR) between convolution kernels and activation maps.

    rho = kernel_sdr(fine, coarse, stride=2)               # one pathway, two 2-D kernels
    rhos = layer_sdr(generator, "g_h3_decon2d", "g_h4_decon2d")   # [in, middle, out] pathways
    per_map = activation_sdr(activations, kernel, stride=2)       # eq. 8 of the 2018 workshop
    loss = sdr_penalty(activations, kernel, stride=2)             # eq. 9, differentiable

Convention. Two successive layers compose into ``y = f * (c * z^s)^s``: the kernel ``c`` acts at
the coarser resolution, the signal is upsampled by ``s`` (zeros inserted), and ``f`` acts at the
finer resolution. In the Fourier domain ``y^(u, v) = f^(u, v) c^(s u, s v) z^(s^2 u, s^2 v)``, so
with white-noise input the spectral independence criterion compares ``f^(u, v)`` with
``c^(s u, s v)``::

    rho = <|f^(u, v) c^(s u, s v)|^2> / (<|f^|^2> <|c^|^2>)

(the SDR paper's section 3.2 names the kernels g and h the other way round from its Figure 3
caption; the pairing above follows from the composition). In a generator or decoder the *fine*
kernel is the later (transposed) convolution and ``s`` its stride; in a discriminator or encoder
the fine kernel is the earlier convolution and ``s`` its stride (by the noble identity
``c * (x)_{down s} = (c^s * x)_{down s}``, the same formula). By Parseval the numerator is the
squared norm of ``f * c^s`` and, over many pathways, the inner product of the autocorrelation of
``f`` taken at lags that are multiples of ``s`` with the autocorrelation of ``c``: no frequency
grid is needed and every pathway of two layers is one matrix product.

Kernels are real, so |k^(-u)| = |k^(u)| and flips of either kernel do not change rho.

Layers are named as in :func:`tfcf.split` (qualified ``"sub/layer"`` names reach layers of nested
functional models); successive convolutions are found on the model's flattened graph
(:meth:`tfcf.graph.FlatGraph.preceding`).
"""

from __future__ import annotations

import keras
import numpy as np

from tfcf.graph import flat_graph

__all__ = ["INTERPOLATIONS", "activation_sdr", "conv_pairs", "kernel_sdr", "interpolation_kernel",
           "layer_kernels", "layer_sdr", "model_sdr", "pair_layout", "pathway",
           "sdr_by_resolution", "sdr_penalty", "fine_resolution", "contribution_energy",
           "summarize", "zero_kernels"]


def _check_kernel(kernel, name, rank=2):
    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.ndim != rank:
        raise ValueError(f"{name} must be a {rank}-D kernel, got shape {kernel.shape}")
    if not np.isfinite(kernel).all():
        raise ValueError(f"{name} holds non-finite values")
    return kernel


def _check_stride(stride):
    if int(stride) != stride or int(stride) < 1:
        raise ValueError(f"stride must be an integer >= 1, got {stride!r}")
    return int(stride)


def _autocorrelation(kernels):
    """Full 2-D autocorrelation of kernels [..., kh, kw] -> [..., 2kh-1, 2kw-1] (lag 0 centred)."""
    kh, kw = kernels.shape[-2:]
    size = (2 * kh - 1, 2 * kw - 1)
    spectrum = np.fft.rfft2(kernels, s=size)
    corr = np.fft.irfft2(np.abs(spectrum) ** 2, s=size)
    return np.fft.fftshift(corr, axes=(-2, -1))


def _at_lags(r_fine, fine_shape, r_coarse, coarse_shape, stride):
    """R_f at lags s*t and R_c at lags t, over the lags t where both can be non-zero.

    ``r_*`` are centred autocorrelations of signals of spatial ``*_shape``; returns
    ([..., T] for fine, [..., T] for coarse)."""
    (fh, fw), (ch, cw) = fine_shape, coarse_shape
    # lags t with |s t| < fine size and |t| < coarse size
    rows = np.arange(-min((fh - 1) // stride, ch - 1), min((fh - 1) // stride, ch - 1) + 1)
    cols = np.arange(-min((fw - 1) // stride, cw - 1), min((fw - 1) // stride, cw - 1) + 1)
    fine_at = r_fine[..., (fh - 1) + stride * rows[:, None], (fw - 1) + stride * cols[None, :]]
    coarse_at = r_coarse[..., (ch - 1) + rows[:, None], (cw - 1) + cols[None, :]]
    return (fine_at.reshape(fine_at.shape[:-2] + (-1,)),
            coarse_at.reshape(coarse_at.shape[:-2] + (-1,)))


def _lag_products(fine_kernels, coarse_kernels, stride):
    """:func:`_at_lags` of two kernel stacks' autocorrelations."""
    return _at_lags(_autocorrelation(fine_kernels), fine_kernels.shape[-2:],
                    _autocorrelation(coarse_kernels), coarse_kernels.shape[-2:], stride)


def kernel_sdr(fine, coarse, stride):
    """SDR of one pathway: ``<|f^(u,v) c^(su,sv)|^2> / (<|f^|^2> <|c^|^2>)``.

        rho = kernel_sdr(later_generator_kernel, earlier_generator_kernel, stride=2)
        kernel_sdr(f, delta, 2)           # 1.0: a delta coarse kernel is independent of anything

    ``fine`` acts at the finer resolution, ``coarse`` at the coarser one (see the module
    docstring for which layer is which). Returns NaN when either kernel is all zero.
    """
    fine = _check_kernel(fine, "fine")
    coarse = _check_kernel(coarse, "coarse")
    stride = _check_stride(stride)
    rf, rc = _lag_products(fine, coarse, stride)
    energy = (fine ** 2).sum() * (coarse ** 2).sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.dot(rf, rc) / energy) if energy > 0 else float("nan")


# --------------------------------------------------------------------------- layers


def layer_kernels(layer, name=None):
    """A conv layer's kernel as ``[kh, kw, in, out]`` (Conv2D layout; Conv2DTranspose transposed).

        kernels = layer_kernels(generator, "g_h4_decon2d")           # [5, 5, 64, 3]
        kernels = layer_kernels(model, "generator/conv2d_1")         # a nested model's layer
        kernels = layer_kernels(model.get_layer("g_h4_decon2d"))     # a layer object

    With a model, ``name`` is resolved as in :func:`tfcf.split` (qualified ``"sub/layer"``
    names, ``"layer:k"`` for a layer called more than once: every call shares the kernel).
    """
    if name is not None:
        layer = _layer(layer, name)
    if isinstance(layer, keras.layers.Conv2DTranspose):
        return np.transpose(np.asarray(layer.kernel), (0, 1, 3, 2))
    if isinstance(layer, keras.layers.Conv2D):
        return np.asarray(layer.kernel)
    raise ValueError(f"layer {layer.name!r} is a {type(layer).__name__}, not a Conv2D or "
                     "Conv2DTranspose")


def _conv_info(layer):
    if not isinstance(layer, _CONVOLUTIONS):
        raise ValueError(f"layer {layer.name!r} is a {type(layer).__name__}; SDR needs Conv2D "
                         "or Conv2DTranspose layers")
    strides = tuple(layer.strides)
    if strides[0] != strides[1]:
        raise ValueError(f"layer {layer.name!r} has unequal strides {strides}")
    if tuple(getattr(layer, "dilation_rate", (1, 1))) != (1, 1) or getattr(layer, "groups", 1) != 1:
        raise ValueError(f"layer {layer.name!r} is dilated or grouped; not supported")
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise ValueError(f"layer {layer.name!r} is channels_first; not supported")
    return isinstance(layer, keras.layers.Conv2DTranspose), strides[0]


_CONVOLUTIONS = (keras.layers.Conv2D, keras.layers.Conv2DTranspose)
_PASS_THROUGH = ("BatchNormalization", "ReLU", "LeakyReLU", "ELU", "Activation", "Dropout",
                 "SpatialDropout2D", "GaussianNoise", "PReLU", "LayerNormalization")
INTERPOLATIONS = ("nearest", "bilinear")


def interpolation_kernel(interpolation, factor):
    """The 2-D kernel ``h`` with ``upsample(x, factor) == h * (x with zeros inserted)``.

        interpolation_kernel("nearest", 2)     # [[1, 1], [1, 1]]: a box of ones
        interpolation_kernel("bilinear", 2)    # outer([.25, .75, .75, .25]) : the tent

    Exact for ``keras.layers.UpSampling2D`` away from the borders (nearest: ``x[n // s]``;
    bilinear: half-pixel centres, the triangle ``max(0, 1 - |d - (s - 1) / 2| / s)``).
    """
    factor = _check_stride(factor)
    if interpolation == "nearest":
        taps = np.ones(factor)
    elif interpolation == "bilinear":
        offsets = np.arange(-factor, 2 * factor)
        taps = np.maximum(0.0, 1.0 - np.abs(offsets - (factor - 1) / 2.0) / factor)
        taps = taps[taps > 0]
    else:
        raise ValueError(f"unknown interpolation {interpolation!r}; valid: "
                         f"{', '.join(INTERPOLATIONS)}")
    return np.outer(taps, taps)


def _resize_step(op):
    """``("up" | "down", factor, kernel)`` of a resize layer SDR pairs across, else None."""
    layer = op.operation
    if isinstance(layer, keras.layers.UpSampling2D):
        size = tuple(layer.size)
        if size[0] != size[1] or layer.interpolation not in INTERPOLATIONS or getattr(
                layer, "data_format", "channels_last") != "channels_last":
            return None
        return "up", size[0], interpolation_kernel(layer.interpolation, size[0])
    if isinstance(layer, keras.layers.AveragePooling2D):
        pool, strides = tuple(layer.pool_size), tuple(layer.strides)
        if pool != strides or pool[0] != pool[1] or layer.data_format != "channels_last":
            return None
        return "down", pool[0], np.full(pool, 1.0 / (pool[0] * pool[1]))
    return None


def _resize_problem(op):
    """Why a resize layer is not paired across (for error messages), or None."""
    layer = op.operation
    if isinstance(layer, keras.layers.UpSampling2D) and _resize_step(op) is None:
        return (f"UpSampling2D size {tuple(layer.size)}, interpolation {layer.interpolation!r}: "
                f"SDR pairs across square factors with interpolation "
                f"{' or '.join(INTERPOLATIONS)}")
    if isinstance(layer, keras.layers.AveragePooling2D) and _resize_step(op) is None:
        return (f"AveragePooling2D pool {tuple(layer.pool_size)}, strides "
                f"{tuple(layer.strides)}: SDR pairs across square pools with pool == strides")
    return None


def _is_pass_through(op):
    return type(op.operation).__name__ in _PASS_THROUGH or _resize_step(op) is not None


def _layer(model, name):
    """The layer called under ``name`` (qualified names reach nested models; ``"name:k"`` or a
    plain name reach a layer called more than once, whose calls share one kernel)."""
    ops = flat_graph(model).resolve_ops(name)
    layers = {id(op.operation): op.operation for op in ops}
    if len(layers) != 1:  # pragma: no cover - one name is one layer
        raise ValueError(f"{name!r} names {len(layers)} layers in model {model.name!r}")
    return ops[0].operation


def _predecessor_conv(graph, op):
    """The conv op that alone feeds ``op`` through element-wise and resize layers (or None),
    the path walked, and the resize ops passed (nearest first).

    The path names the ops walked through, nearest first, then whatever stopped the walk
    (another kind of layer, a model input)."""
    found = graph.preceding(op, kind=_CONVOLUTIONS, through=_is_pass_through)
    path = [graph.name_of(o) for o in found.passed]
    for o in found.blocked:
        problem = _resize_problem(o)
        path.append(f"{graph.name_of(o)} ({problem or type(o.operation).__name__})")
    path += [f"model {graph.specs[tid].description}" for tid in found.inputs]
    if len(found.ops) != 1 or found.blocked or found.inputs:
        return None, path, []
    resizes = [o for o in found.passed if _resize_step(o) is not None]
    return found.ops[0], path, resizes


def _upsampled(kernel, factor):
    """A 2-D kernel with ``factor - 1`` zeros inserted between its taps."""
    if factor == 1:
        return kernel
    out = np.zeros(((kernel.shape[0] - 1) * factor + 1, (kernel.shape[1] - 1) * factor + 1))
    out[::factor, ::factor] = kernel
    return out


def _full_convolution(first, second):
    """Full 2-D convolution of two small kernels."""
    out = np.zeros((first.shape[0] + second.shape[0] - 1, first.shape[1] + second.shape[1] - 1))
    for i in range(second.shape[0]):
        for j in range(second.shape[1]):
            out[i:i + first.shape[0], j:j + first.shape[1]] += second[i, j] * first
    return out


def _pairing(model, layer_a, layer_b):
    """``(fine, stride, extra, resizes)``: the fine layer ("a"/"b"), the stride between the two
    kernels, the 2-D kernel the fine kernel is convolved with (interpolation of the resizes
    between the layers; ``[[1]]`` when none) and the names of those resizes."""
    graph = flat_graph(model)
    first, second = graph.op_named(layer_a), graph.op_named(layer_b)
    transposed_a, stride_a = _conv_info(first.operation)
    transposed_b, stride_b = _conv_info(second.operation)
    parent, passed, resizes = _predecessor_conv(graph, second)
    if parent is not first:
        found = graph.name_of(parent) if parent is not None else "no single conv layer"
        detail = f" (through {', '.join(passed)})" if passed else ""
        raise ValueError(f"layers {layer_a!r} and {layer_b!r} are not successive convolutions: "
                         f"{layer_b!r} reads {found}{detail}; only element-wise layers "
                         f"({', '.join(_PASS_THROUGH)}) and resizes (UpSampling2D "
                         f"{'/'.join(INTERPOLATIONS)}, AveragePooling2D) may sit between them")
    # What lies between the two kernels, in the order of the information flow.
    steps = []
    if not transposed_a and stride_a > 1:
        steps.append(("down", stride_a, np.ones((1, 1))))
    steps += [_resize_step(o) for o in reversed(resizes)]
    if transposed_b and stride_b > 1:
        steps.append(("up", stride_b, np.ones((1, 1))))
    directions = {direction for direction, _, _ in steps}
    names = [graph.name_of(o) for o in reversed(resizes)]
    if directions == {"up", "down"}:
        raise ValueError(f"between {layer_a!r} and {layer_b!r} the signal is both downsampled and "
                         f"upsampled ({', '.join([layer_a] + names + [layer_b])}): no SDR pairing")
    extra, rate = np.ones((1, 1)), 1
    if "up" in directions:
        # Each step zero-inserts by s, then filters with h. Noble identity:
        # a ; up s1, h1 ; up s2, h2 ; b == a ; up s1 s2 ; h1^(s2) * h2 * b   (fine: b)
        for _, factor, kernel in steps:
            extra = _full_convolution(_upsampled(extra, factor), kernel)
            rate *= factor
        return "b", rate, extra, names
    # Each step filters with h, then keeps every s-th sample. Noble identity:
    # a ; h1, down s1 ; h2, down s2 ; b == a * h1 * h2^(s1) ; down s1 s2 ; b   (fine: a)
    for _, factor, kernel in steps:
        extra = _full_convolution(extra, _upsampled(kernel, rate))
        rate *= factor
    if rate == 1 and (transposed_a or transposed_b):
        return "b", 1, extra, names
    return "a", rate, extra, names


def pair_layout(model, layer_a, layer_b):
    """How two successive conv layers pair: ``(fine, coarse, stride)`` with fine/coarse "a"/"b".

        pair_layout(dcgan, "g_h3_decon2d", "g_h4_decon2d")     # ("b", "a", 2)
        pair_layout(dcgan_d, "d_h0_conv2d", "d_h1_conv2d")     # ("a", "b", 2)
        pair_layout(began, "conv1_b", "conv3_a")               # ("b", "a", 2): resize-conv

    A resize between the layers (``UpSampling2D`` nearest or bilinear, ``AveragePooling2D``)
    counts in the stride; its interpolation kernel joins the fine kernel (:func:`pathway`).
    """
    fine, stride, _, _ = _pairing(model, layer_a, layer_b)
    return fine, "a" if fine == "b" else "b", stride


def _kernel_stacks(model, layer_a, layer_b):
    """``(fine, coarse, stride, fine_is_b)`` kernel stacks: a as [I, M, kh, kw], b as
    [M, O, kh, kw], the fine one convolved with the resize interpolation kernel."""
    fine_name, stride, extra, _ = _pairing(model, layer_a, layer_b)
    a = np.transpose(layer_kernels(model, layer_a).astype(np.float64), (2, 3, 0, 1))
    b = np.transpose(layer_kernels(model, layer_b).astype(np.float64), (2, 3, 0, 1))
    if extra.shape != (1, 1):
        from scipy.signal import convolve

        if fine_name == "b":
            b = convolve(b, extra[None, None], mode="full", method="direct")
        else:
            a = convolve(a, extra[None, None], mode="full", method="direct")
    return (b, a, stride, True) if fine_name == "b" else (a, b, stride, False)


def pathway(model, layer_a, layer_b, i, m, o):
    """The two 2-D kernels and the stride of one pathway ``i -> m -> o``: ``(fine, coarse, s)``.

        fine, coarse, stride = pathway(generator, "g_h3_decon2d", "g_h4_decon2d", 0, 5, 2)
        kernel_sdr(fine, coarse, stride) == layer_sdr(generator, ...)[0, 5, 2]

    ``a: i -> m`` and ``b: m -> o``. For a resize-convolution (nearest or bilinear up-sampling
    by ``s`` then a convolution ``k``) the fine kernel is ``k`` convolved with the
    interpolation kernel (:func:`interpolation_kernel`) and the stride is ``s``: up-sampling
    then ``k`` equals zero insertion then that kernel.
    """
    fine, coarse, stride, fine_is_b = _kernel_stacks(model, layer_a, layer_b)
    if fine_is_b:
        return fine[m, o], coarse[i, m], stride
    return fine[i, m], coarse[m, o], stride


def layer_sdr(model, layer_a, layer_b):
    """SDR of every pathway ``in -> middle -> out`` of two successive conv layers.

        rhos = layer_sdr(generator, "g_h3_decon2d", "g_h4_decon2d")   # [64, ... ] see below
        rhos = layer_sdr(began, "conv1_b", "conv3_a")     # nearest up-sampling between them

    ``layer_a`` comes first in the information flow. Returns ``[in channels of a, out channels
    of a, out channels of b]``; entry ``[i, m, o]`` is :func:`kernel_sdr` of the kernels
    ``a: i -> m`` and ``b: m -> o`` with the fine/coarse roles and stride of
    :func:`pair_layout` (with a resize between them, the fine kernel of :func:`pathway`). Layer
    names as in :func:`tfcf.split`. NaN where a kernel is all zero.
    """
    numerator, energy = _pathway_products(model, layer_a, layer_b)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(energy > 0, numerator / np.where(energy > 0, energy, 1.0), np.nan)


def _pathway_products(model, layer_a, layer_b):
    """``||f * c^s||^2`` and ``||f||^2 ||c||^2`` of every pathway, each [I, M, O]."""
    fine, coarse, stride, fine_is_b = _kernel_stacks(model, layer_a, layer_b)
    r_fine, r_coarse = _lag_products(fine, coarse, stride)
    if fine_is_b:
        ra, rb, a, b = r_coarse, r_fine, coarse, fine
    else:
        ra, rb, a, b = r_fine, r_coarse, fine, coarse
    numerator = np.einsum("imt,mot->imo", ra, rb, optimize=True)
    energy = (a ** 2).sum(axis=(2, 3))[:, :, None] * (b ** 2).sum(axis=(2, 3))[None, :, :]
    return numerator, energy


def conv_pairs(model):
    """Successive (transposed) convolution pairs ``(a, b)`` of a model, in information-flow order.

        conv_pairs(dcgan_generator)   # [('g_h1_decon2d', 'g_h2_decon2d'), ..., ('g_h3_..', 'g_h4_..')]
        conv_pairs(began_generator)   # [('conv1_a', 'conv1_b'), ('conv1_b', 'conv3_a'), ...]

    Layers of nested functional models are included under their qualified names; a pair may
    have element-wise layers and resizes (:func:`pair_layout`) between its layers. An empty
    list when the model has none (:func:`model_sdr` says why).
    """
    graph = flat_graph(model)
    pairs = []
    for op in graph.ops:
        if isinstance(op.operation, _CONVOLUTIONS):
            parent, _, _ = _predecessor_conv(graph, op)
            if parent is not None:
                pairs.append((graph.name_of(parent), graph.name_of(op)))
    return pairs


def _checked_pairs(model):
    """:func:`conv_pairs`, or a ValueError that says why there are none."""
    pairs = conv_pairs(model)
    if pairs:
        return pairs
    graph = flat_graph(model)
    convs = [op for op in graph.ops if isinstance(op.operation, _CONVOLUTIONS)]
    if not convs:
        kinds = sorted({type(op.operation).__name__ for op in graph.ops})
        raise ValueError(f"model {model.name!r} has no Conv2D or Conv2DTranspose layer, so no "
                         f"SDR (its layers: {', '.join(kinds)})")
    reasons = "; ".join(f"{graph.name_of(op)} reads {', '.join(_predecessor_conv(graph, op)[1])}"
                        for op in convs)
    raise ValueError(f"model {model.name!r} has no two successive convolutions: {reasons}. Only "
                     f"element-wise layers ({', '.join(_PASS_THROUGH)}) and resizes "
                     f"(UpSampling2D {'/'.join(INTERPOLATIONS)}, AveragePooling2D) may sit "
                     "between two convolutions of a pair")


def model_sdr(model):
    """:func:`layer_sdr` of every successive conv pair: ``{(a, b): rho [in, middle, out]}``.

        rhos = model_sdr(discriminator)
        values = np.concatenate([r.ravel() for r in rhos.values()])

    Raises ValueError, saying what stands between the convolutions, when there is no pair.
    """
    return {pair: layer_sdr(model, *pair) for pair in _checked_pairs(model)}


def fine_resolution(model, layer_a, layer_b):
    """The image size (pixels per side) at which the fine kernel of a pair acts.

        fine_resolution(generator, "g_h3_decon2d", "g_h4_decon2d")      # 64
    """
    fine_name, _, _ = pair_layout(model, layer_a, layer_b)
    graph = flat_graph(model)
    op = graph.op_named(layer_b if fine_name == "b" else layer_a)
    if isinstance(op.operation, keras.layers.Conv2DTranspose):
        return int(graph.specs[op.outputs[0]].shape[1])
    return int(graph.specs[op.inputs[0]].shape[1])


def contribution_energy(model, layer_a, layer_b):
    """Energy of each kernel ``i -> m`` of ``layer_a`` as it reaches ``layer_b``'s outputs.

        energy = contribution_energy(generator, "g_h3_decon2d", "g_h4_decon2d")  # [in, mid]

    ``||f_mo * c_mi^s||^2`` averaged over the outputs ``o`` of ``layer_b`` (the numerator of
    :func:`kernel_sdr`, i.e. the energy of the pathway's composite kernel; with a resize between
    the layers, of the composite through its interpolation kernel).
    """
    numerator, _ = _pathway_products(model, layer_a, layer_b)
    return numerator.mean(axis=2)


def zero_kernels(model, layer, keep):
    """A model whose ``layer`` kernels ``i -> m`` are zero where ``keep[i, m]`` is False.

        pruned = zero_kernels(generator, "g_h3_decon2d", energy > np.median(energy))
        pruned = zero_kernels(model, "generator/conv2d_1", keep)     # a nested model's layer

    ``layer`` is named as in :func:`tfcf.split`. The result is a clone of ``model`` in which
    that layer is a new layer with the masked kernel and every other layer is ``model``'s own
    (shared, weights included; ``model`` itself is unchanged). A layer called more than once
    (``"shared:0"``) has one kernel: every call gets the mask.
    """
    keep = np.asarray(keep, dtype=bool)
    original = _layer(model, layer)
    _conv_info(original)
    transposed = isinstance(original, keras.layers.Conv2DTranspose)
    kernel = np.asarray(original.kernel)
    expected = kernel.shape[2:][::-1] if transposed else kernel.shape[2:]
    if keep.shape != tuple(expected):
        raise ValueError(f"keep has shape {keep.shape}; layer {layer!r} has {expected[0]} "
                         f"inputs x {expected[1]} outputs")
    replacement = type(original).from_config(original.get_config())

    def clone(candidate):
        return replacement if candidate is original else candidate

    copy = keras.models.clone_model(model, clone_function=clone, recursive=True)
    mask = keep.T if transposed else keep
    replacement.set_weights(original.get_weights())
    replacement.kernel.assign(kernel * mask[None, None].astype(kernel.dtype))
    return copy


# --------------------------------------------------------------------------- activations


def _check_activations(activations, kernel):
    activations = np.asarray(activations, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    if activations.ndim == 3 and kernel.ndim == 2:
        return activations[..., None], kernel[:, :, None, None], True
    if activations.ndim != 4 or kernel.ndim != 4:
        raise ValueError(
            "activation_sdr takes maps [B, H, W] with a kernel [kh, kw], or a layer's activations "
            f"[B, H, W, C] with kernels [kh, kw, C, out]; got {activations.shape} and "
            f"{kernel.shape}")
    if activations.shape[-1] != kernel.shape[2]:
        raise ValueError(f"activations have {activations.shape[-1]} channels but the kernel "
                         f"[kh, kw, in, out] has {kernel.shape[2]} inputs")
    return activations, kernel, False


def activation_sdr(activations, kernel, stride, reduce=True):
    """SDR between activation maps (Bartlett PSD over the batch) and the filters they feed.

        rho = activation_sdr(maps, kernel, stride=2)            # maps [B, H, W], kernel [kh, kw]
        per_map = activation_sdr(acts, kernels, stride=2)     # [B, H, W, C], [kh, kw, C, out] -> [C]

    Eq. 8 of the ICML 2018 workshop paper: ``<(1/B) sum_i |f^(u,v) x_i^(su,sv)|^2> /
    (<|f^|^2> <(1/B) sum_i |x_i^|^2>)`` where ``f`` acts on the maps upsampled by ``stride``
    (zeros inserted, as a transposed convolution does). Computed exactly through Parseval:
    autocorrelations of the maps (averaged over the batch) against those of the filters.
    ``reduce=True`` averages over each map's outgoing filters ([C]); else ``[C, out]``.
    """
    stride = _check_stride(stride)
    activations, kernel, single = _check_activations(activations, kernel)
    maps = np.transpose(activations, (3, 0, 1, 2))  # [C, B, H, W]
    filters = np.transpose(kernel, (2, 3, 0, 1))    # [C, O, kh, kw]
    r_maps = _autocorrelation(maps).mean(axis=1)    # [C, 2H-1, 2W-1]
    r_filters = _autocorrelation(filters)           # [C, O, 2kh-1, 2kw-1]
    rf, rx = _at_lags(r_filters, filters.shape[-2:], r_maps, maps.shape[-2:], stride)
    numerator = np.einsum("cot,ct->co", rf, rx)
    energy = (filters ** 2).sum(axis=(2, 3)) * (maps ** 2).sum(axis=(2, 3)).mean(axis=1)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(energy > 0, numerator / np.where(energy > 0, energy, 1.0), np.nan)
    if single:
        return float(rho[0, 0])
    return np.nanmean(rho, axis=1) if reduce else rho


def _dft_matrices(size, grid):
    k = np.arange(grid)[:, None] * np.arange(size)[None, :]
    angle = 2.0 * np.pi * k / grid
    return np.cos(angle), -np.sin(angle)


def _dft2(values, pattern, rows, cols):
    """(real, imaginary) of a 2-D DFT by matrix products (``keras.ops``, differentiable)."""
    from keras import ops

    (cos_h, sin_h), (cos_w, sin_w) = ([ops.convert_to_tensor(m, "float32") for m in pair]
                                      for pair in (rows, cols))
    real = ops.einsum(pattern, cos_h, values, cos_w) - ops.einsum(pattern, sin_h, values, sin_w)
    imag = ops.einsum(pattern, sin_h, values, cos_w) + ops.einsum(pattern, cos_h, values, sin_w)
    return real, imag


def sdr_penalty(activations, kernel, stride, grid=None):
    """Eq. 9 of the ICML 2018 workshop paper, summed over (map, filter) pairs; differentiable.

        loss = sdr_penalty(activations, layer.kernel, stride=2)    # keras.ops, any backend
        loss = sdr_penalty(maps, kernel_2d, stride=2)              # one (map, filter) pair

    For each pair: ``< |f^|^2 (|m^(su, sv)|^2 / <|m^(s.)|^2> - 1)^2 >`` with ``m`` the batch mean
    of the map (the mean of the transforms is the transform of the mean), ``<.>`` the average
    over a ``grid x grid`` DFT grid of the upsampled map (default: its size plus the kernel
    size - 1). ``activations`` [B, H, W, C] and ``kernel`` [kh, kw, C, out] (Conv2D layout; pass
    a Conv2DTranspose kernel transposed, e.g. ``keras.ops.transpose(k, (0, 1, 3, 2))``); or
    [B, H, W] and [kh, kw]. Tensors in, a scalar tensor out.
    """
    from keras import ops

    stride = _check_stride(stride)
    activations = ops.convert_to_tensor(activations, "float32")
    kernel = ops.convert_to_tensor(kernel, "float32")
    if len(activations.shape) == 3 and len(kernel.shape) == 2:
        activations = activations[..., None]
        kernel = kernel[:, :, None, None]
    if len(activations.shape) != 4 or len(kernel.shape) != 4:
        raise ValueError(f"sdr_penalty takes [B, H, W, C] with [kh, kw, C, out] (or [B, H, W] "
                         f"with [kh, kw]); got {tuple(activations.shape)} and "
                         f"{tuple(kernel.shape)}")
    height, width = int(activations.shape[1]) * stride, int(activations.shape[2]) * stride
    kh, kw = int(kernel.shape[0]), int(kernel.shape[1])
    grid_h = int(grid or height + kh - 1)
    grid_w = int(grid or width + kw - 1)
    mean_map = ops.mean(activations, axis=0)                       # [H, W, C]
    # upsample by zero insertion: place the map on every stride-th pixel
    rows = np.zeros((height, int(activations.shape[1])), "float32")
    rows[np.arange(0, height, stride), np.arange(int(activations.shape[1]))] = 1.0
    cols = np.zeros((width, int(activations.shape[2])), "float32")
    cols[np.arange(0, width, stride), np.arange(int(activations.shape[2]))] = 1.0
    up = ops.einsum("yh,hwc,xw->cyx", rows, mean_map, cols)        # [C, sH, sW]
    real, imag = _dft2(up, "uy,cyx,vx->cuv", _dft_matrices(height, grid_h),
                       _dft_matrices(width, grid_w))
    power = real ** 2 + imag ** 2                                   # [C, grid_h, grid_w]
    normalised = power / (ops.mean(power, axis=(1, 2), keepdims=True) + 1e-12)
    weight = (normalised - 1.0) ** 2
    k_real, k_imag = _dft2(kernel, "uy,yxco,vx->couv", _dft_matrices(kh, grid_h),
                           _dft_matrices(kw, grid_w))
    filter_power = ops.sum(k_real ** 2 + k_imag ** 2, axis=1)       # [C, grid_h, grid_w]
    return ops.sum(ops.mean(filter_power * weight, axis=(1, 2)))


def sdr_by_resolution(model):
    """``{resolution: rho values}`` over every successive conv pair of ``model``.

        rhos = sdr_by_resolution(generator)      # {16: array, 32: array, 64: array}

    The resolution is the one at which the pair's fine kernel acts (:func:`fine_resolution`).
    One pair at a resolution gives its ``[in, middle, out]`` array (:func:`layer_sdr`);
    several pairs at the same resolution give all their values, concatenated (1-D). Raises
    ValueError, saying why, when the model has no pair.
    """
    levels = {}
    for a, b in _checked_pairs(model):
        levels.setdefault(fine_resolution(model, a, b), []).append(layer_sdr(model, a, b))
    return {level: values[0] if len(values) == 1 else
            np.concatenate([v.ravel() for v in values]) for level, values in levels.items()}


def summarize(values):
    """Count, mean, quantiles and the tails the papers discuss (below 0.9, above 1.45) of SDRs.

        summarize(layer_sdr(generator, "main.9", "main.12"))["quantiles_5_25_50_75_95"]
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    quantiles = np.quantile(values, [0.05, 0.25, 0.5, 0.75, 0.95]).tolist() if len(values) else []
    return {"count": int(len(values)), "mean": float(values.mean()) if len(values) else None,
            "quantiles_5_25_50_75_95": quantiles,
            "fraction_below_0.9": float(np.mean(values < 0.9)) if len(values) else None,
            "fraction_above_1.45": float(np.mean(values > 1.45)) if len(values) else None}
