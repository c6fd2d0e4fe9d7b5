"""``radiodiff demo``: a Gradio app to try saved pipelines on a city and a transmitter (extra ``demo``).

:mod:`.functions` computes (no Gradio); :mod:`.app` lays out the page and imports Gradio only when built.
"""

from .app import DEFAULT_HOST, DEFAULT_PORT, build_demo, demo_from_folders, run_demo

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "build_demo", "demo_from_folders", "run_demo"]
