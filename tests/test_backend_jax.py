"""The intervention core, influence maps, three architectures, FID features, the SDR penalty and a
training step under KERAS_BACKEND=jax.

A fresh interpreter runs the same golden tests: the Keras backend is fixed at import. Only the
tests whose code path differs by backend run again: graph cutting and hybrids (functional models
are rebuilt per backend), influence maps (compiled steps, data-parallel distribution), one
architecture per family (the rest share the same layers), the linear shortcut through a
per-sample channel scale (its own compiled function) and modules that partition the channels
(the layer's output assembled from their parts), the SDR penalty's gradient and a VAE step
(jax.value_and_grad). The FID port is plain Keras layers already covered by the architectures
(its weights test builds the whole network, 20 s under JAX, and is left to the TensorFlow run).
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.mark.jax
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed (extra [jax])")
def test_core_architectures_and_influence_pass_under_jax():
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not jax and not slow",
         str(HERE / "test_intervene.py"), str(HERE / "test_influence.py"),
         "-k", "not test_split_architectures or dcgan_g_tensorlayer or vae_dec_paper_celeba "
               "or began_g_skip or (hybrid_at_intermediate and tensorlayer)",
         str(HERE / "test_split_architectures.py"),
         str(HERE / "test_spectral.py") + "::test_sdr_penalty_value_and_gradient_match_numpy",
         str(HERE / "test_influence_shortcut.py")
         + "::test_shortcut_through_a_per_sample_channel_scale[depthwise]",
         str(HERE / "test_influence_shortcut.py") + "::test_modules_that_partition_the_channels[wide]",
         str(HERE / "test_train.py") + "::test_vae_steps_reduce_the_loss"],
        cwd=HERE.parent, env=env, capture_output=True, text=True, timeout=900,
    )
    tail = result.stdout[-3000:] + result.stderr[-2000:]
    assert result.returncode == 0, tail
    assert " passed" in result.stdout and "failed" not in result.stdout, tail
    assert "jax" in subprocess.run(
        [sys.executable, "-c", "import keras; print(keras.backend.backend())"],
        env=env, capture_output=True, text=True,
    ).stdout
