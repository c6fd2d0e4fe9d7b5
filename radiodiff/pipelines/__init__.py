"""The second stage's pipeline: building map + transmitter -> radio map."""

import diffusers

from .pipeline_radiodiff import RadioDiffPipeline, rasterize_transmitter

# DiffusionPipeline.from_pretrained looks model_index.json's "_class_name" up as an attribute of the diffusers
# package (pipeline_loading_utils._get_pipeline_class). Made reachable there, the generic loader opens our folders
# once radiodiff's pipelines are imported, which diffusers already requires for the custom components.
diffusers.RadioDiffPipeline = RadioDiffPipeline

__all__ = ["RadioDiffPipeline", "rasterize_transmitter"]
