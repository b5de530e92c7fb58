"""tfcf: counterfactual interventions inside deep generative models (Besserve et al.).

    import tfcf
    head, tail = tfcf.split(generator, "g_h2_relu")
    hybrids = tfcf.hybrid(generator, "g_h2_relu", [0, 5, 9], base=z1, source=z2)
"""

from tfcf.influence import individual_influence, influence_maps
from tfcf.modules import Clustering, Stability, cluster, live_channels, stability
from tfcf.intervene import (
    Intervention,
    SetChannels,
    Split,
    SwapChannels,
    Transform,
    hybrid,
    intervene,
    split,
)

__version__ = "0.1.0"

__all__ = [
    "Clustering",
    "Stability",
    "cluster",
    "live_channels",
    "stability",
    "Intervention",
    "SetChannels",
    "Split",
    "SwapChannels",
    "Transform",
    "hybrid",
    "individual_influence",
    "influence_maps",
    "intervene",
    "split",
]
