"""The BigGAN-deep-256 replica (tools/biggan_replica.py) written again in NumPy, float64.

    weights, tables = build_replica(path, channels=8)
    images = reference_forward(weights, tables, z, y, truncation=0.37)
    images = reference_forward(weights, tables, z, y, 0.37, override=swap)   # swap(name, value)

An independent check of the exported TF1 graph: it shares with the tool only the weights and
the statistics tables, never code. It follows the public description of the module (the
PyTorch port of huggingface/pytorch-pretrained-BigGAN): spectral norm by one power iteration
from u0, conditional batch norm on concat(z, embedding(y)), 12 Gblocks with the self-attention
block before GBlock_8, batch-norm statistics interpolated linearly between 51 truncation values.
"""

from __future__ import annotations

import numpy as np

EMA = "ema_0.9999"
EPS = 1e-4
UPSAMPLE = (False, True, False, True, False, True, False, True, False, True, False, True)


def _scope(index, base):
    return base if index == 0 else f"{base}_{index}"


def _spectral(weights, prefix):
    w = weights[f"{prefix}/w/{EMA}"].astype("float64")
    matrix = w.reshape(-1, w.shape[-1])
    u = weights[f"{prefix}/u0"].astype("float64")
    v = u @ matrix.T
    v = v / (np.sqrt(np.sum(v * v)) + EPS)
    u = v @ matrix
    u = u / (np.sqrt(np.sum(u * u)) + EPS)
    return w / (v @ matrix @ u.T).item()


def _conv(x, kernel, bias=None):
    size = kernel.shape[0]
    pad = size // 2
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    height, width = x.shape[1:3]
    out = np.zeros(x.shape[:3] + (kernel.shape[-1],))
    for dy in range(size):
        for dx in range(size):
            out += padded[:, dy:dy + height, dx:dx + width, :] @ kernel[dy, dx]
    return out if bias is None else out + bias


def _stats(tables, prefix, truncation):
    position = truncation * 50.0
    lower = int(np.clip(np.floor(position), 0, 49))
    fraction = position - lower
    means, variances = (t.astype("float64") for t in tables[prefix])
    return (means[lower] * (1 - fraction) + means[lower + 1] * fraction,
            variances[lower] * (1 - fraction) + variances[lower + 1] * fraction)


def _batchnorm(weights, tables, prefix, x, cond, truncation):
    mean, var = _stats(tables, prefix, truncation)
    x = (x - mean) / np.sqrt(var + EPS)
    if cond is None:
        return x * weights[f"{prefix}/scale/{EMA}"] + weights[f"{prefix}/offset/{EMA}"]
    scale = 1.0 + cond @ _spectral(weights, f"{prefix}/scale")
    offset = cond @ _spectral(weights, f"{prefix}/offset")
    return x * scale[:, None, None, :] + offset[:, None, None, :]


def _up(x):
    return x.repeat(2, axis=1).repeat(2, axis=2)


def _pool(x):
    b, h, w, c = x.shape
    return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def _attention(weights, x):
    prefix = "Generator/attention"
    b, h, w, c = x.shape
    theta = _conv(x, _spectral(weights, f"{prefix}/theta")).reshape(b, h * w, c // 8)
    phi = _pool(_conv(x, _spectral(weights, f"{prefix}/phi"))).reshape(b, h * w // 4, c // 8)
    g = _pool(_conv(x, _spectral(weights, f"{prefix}/g"))).reshape(b, h * w // 4, c // 2)
    logits = theta @ phi.transpose(0, 2, 1)
    attend = np.exp(logits - logits.max(axis=-1, keepdims=True))
    attend /= attend.sum(axis=-1, keepdims=True)
    out = _conv((attend @ g).reshape(b, h, w, c // 2), _spectral(weights, f"{prefix}/o_conv"))
    return x + weights[f"{prefix}/gamma/{EMA}"] * out


def reference_forward(weights, tables, z, y, truncation, override=None):
    """Images [B, 256, 256, 3]; ``override(name, value)`` may replace any conv output, named
    like ``"GBlock_5/conv1"`` (after its bias)."""
    override = override or (lambda name, value: value)
    relu = lambda v: np.maximum(v, 0.0)  # noqa: E731
    cond = np.concatenate([np.asarray(z, "float64"),
                           np.asarray(y, "float64") @ weights[f"linear/w/{EMA}"]], axis=1)
    h = cond @ _spectral(weights, "Generator/GenZ/G_linear") + weights[
        f"Generator/GenZ/G_linear/b/{EMA}"]
    h = h.reshape(len(h), 4, 4, -1)
    for index, up in enumerate(UPSAMPLE):
        if index == 8:
            h = _attention(weights, h)
        scope = _scope(index, "GBlock")
        skip = h
        for layer in range(4):
            prefix = f"Generator/{scope}"
            h = relu(_batchnorm(weights, tables, f"{prefix}/{_scope(layer, 'BatchNorm')}", h,
                                cond, truncation))
            if layer == 1 and up:
                h = _up(h)
            h = _conv(h, _spectral(weights, f"{prefix}/conv{layer}"),
                      weights[f"{prefix}/conv{layer}/b/{EMA}"])
            h = override(f"{scope}/conv{layer}", h)
        skip = skip[..., : h.shape[-1]]
        h = h + (_up(skip) if up else skip)
    h = relu(_batchnorm(weights, tables, "Generator/BatchNorm", h, None, truncation))
    h = _conv(h, _spectral(weights, "Generator/conv_to_rgb"),
              weights[f"Generator/conv_to_rgb/b/{EMA}"])
    return np.tanh(h[..., :3])
