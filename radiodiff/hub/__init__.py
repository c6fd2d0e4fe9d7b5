"""Publishing a training run of either stage: its model card (``cards``) and its upload to the Hugging Face Hub
(``push``), and a pipeline's demo as a Space (``space``). A first-stage run holds ``vae/``; a second-stage run and
a RadioUNet run hold ``pipeline/``."""

from .cards import (
    LICENSE,
    HubError,
    is_pipeline_run,
    is_radiounet_run,
    render_pipeline_model_card,
    render_radiounet_model_card,
    render_vae_model_card,
    write_pipeline_model_card,
    write_vae_model_card,
)
from .push import push_to_hub
from .space import space_files, write_space

__all__ = [
    "HubError",
    "LICENSE",
    "is_pipeline_run",
    "is_radiounet_run",
    "push_to_hub",
    "render_pipeline_model_card",
    "render_radiounet_model_card",
    "render_vae_model_card",
    "space_files",
    "write_pipeline_model_card",
    "write_space",
    "write_vae_model_card",
]
