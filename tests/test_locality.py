"""tfcf.locality: inside/outside change of module hybrids, against a hand computation."""

import numpy as np
import pytest

from tfcf.locality import block_mean, module_locality


def test_inside_outside_by_hand():
    """Module 0 changes a 2x2 corner by 1 (and everything else by 0.1); its template covers the
    corner. Module 1 changes everything by 0.5 and its template is flat: no outside."""
    rng = np.random.default_rng(0)
    originals = rng.normal(size=(3, 4, 4, 3))
    change_0 = np.full((4, 4), 0.1)
    change_0[:2, :2] = 1.0
    sign = rng.choice([-1.0, 1.0], size=(3, 4, 4, 3))
    hybrids = np.stack([originals + sign * change_0[None, :, :, None],
                        originals - 0.5])
    corner = np.zeros((4, 4))
    corner[:2, :2] = 2.0
    corner[2:, 2:] = 0.9   # below half the peak: outside
    templates = np.stack([corner, np.ones((4, 4))])
    result = module_locality(originals, hybrids, templates, level=0.5)
    np.testing.assert_allclose(result["inside"], [1.0, 0.5])
    np.testing.assert_allclose(result["outside"], [0.1, 0.0])
    assert result["ratio"][0] == pytest.approx(10.0) and result["ratio"][1] == float("inf")
    np.testing.assert_allclose(result["area"], [0.25, 1.0])
    np.testing.assert_allclose(result["share"], [4.0 / (4.0 + 12 * 0.1), 1.0])


def test_templates_coarser_than_images_are_compared_on_block_means():
    originals = np.zeros((1, 4, 4))
    hybrids = np.zeros((1, 1, 4, 4))
    hybrids[0, 0, 0, 0] = 4.0          # one pixel of the top-left 2x2 block
    template = np.array([[[1.0, 0.0], [0.0, 0.0]]])
    result = module_locality(originals, hybrids, template)
    assert result["inside"] == [1.0] and result["outside"] == [0.0] and result["share"] == [1.0]
    np.testing.assert_allclose(block_mean(np.arange(16.0).reshape(4, 4), (2, 2)),
                               [[2.5, 4.5], [10.5, 12.5]])


@pytest.mark.parametrize("bad, match", [
    (dict(level=0.0), "level"), (dict(templates=-np.ones((1, 2, 2))), "non-negative"),
    (dict(templates=np.ones((1, 3, 3))), "equal blocks"),
    (dict(templates=np.ones((2, 2, 2))), "k=1"),
])
def test_bad_arguments_are_named(bad, match):
    arguments = dict(originals=np.zeros((1, 4, 4, 3)), hybrids=np.zeros((1, 1, 4, 4, 3)),
                     templates=np.ones((1, 2, 2)))
    arguments.update(bad)
    with pytest.raises(ValueError, match=match):
        module_locality(**arguments)
