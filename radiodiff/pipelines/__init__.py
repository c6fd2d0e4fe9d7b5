"""The pipelines: building map + transmitter -> radio map, by the second stage or by RadioUNet."""

from .pipeline_radiodiff import RadioDiffPipeline
from .pipeline_radiounet import RadioUNetPipeline
from .radio_map_pipeline_utils import rasterize_transmitter

__all__ = ["RadioDiffPipeline", "RadioUNetPipeline", "rasterize_transmitter"]
