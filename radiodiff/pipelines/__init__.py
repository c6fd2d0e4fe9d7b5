"""The second stage's pipeline: building map + transmitter -> radio map."""

from .pipeline_radiodiff import RadioDiffPipeline, rasterize_transmitter

__all__ = ["RadioDiffPipeline", "rasterize_transmitter"]
