"""A plotly renderer for notebooks that are published as a static, offline book.

MyST-NB (Jupyter Book) drops plotly's own mimetype, so figures must be HTML. The
``notebook_offline`` renderer registered here writes each figure as HTML that calls ``Plotly``, and
puts plotly.js itself (no CDN) once in the notebook, in an output marked with
:data:`PLOTLYJS_OUTPUT` in its metadata: the notebook works in JupyterLab and Voila with no network,
and the book's copy of the notebook drops that output because the book serves plotly.js once from its
``_static`` folder (see ``book/_ext/offline_book.py``). No figure loads MathJax from a CDN.

Only plotly's public renderer API is used (``plotly.io.base_renderers``).
"""

from __future__ import annotations

import plotly.io as pio
from plotly.io.base_renderers import MimetypeRenderer
from plotly.offline import get_plotlyjs

RENDERER_NAME = "notebook_offline"
#: Output metadata key of the one output that carries plotly.js (left out of the book's copies).
PLOTLYJS_OUTPUT = "resource_prediction/plotlyjs"


class OfflineNotebookRenderer(MimetypeRenderer):
    """Figures as HTML (``text/html``); plotly.js embedded once, in a marked output.

    Parameters
    ----------
    config : dict or None
        plotly.js configuration of every figure (e.g. ``{"displaylogo": False}``).
    """

    def __init__(self, config: dict | None = None):
        self.config = dict(config or {"displaylogo": False})

    def activate(self) -> None:
        """Display plotly.js once (plotly calls this before the first figure it renders)."""
        from IPython.display import display

        script = f"<script>window.PlotlyConfig = {{MathJaxConfig: 'local'}};</script>" \
                 f"<script>{get_plotlyjs()}</script>"
        display({"text/html": script}, raw=True, metadata={PLOTLYJS_OUTPUT: True})

    def to_mimebundle(self, fig_dict) -> dict:
        html = pio.to_html(
            fig_dict, config=self.config, include_plotlyjs=False, include_mathjax=False,
            auto_play=False, full_html=False, default_width="100%", default_height=525, validate=False,
        )
        return {"text/html": html}


def use_offline_renderer() -> str:
    """Register the ``notebook_offline`` renderer and make it plotly's default; return its name."""
    if RENDERER_NAME not in pio.renderers:
        pio.renderers[RENDERER_NAME] = OfflineNotebookRenderer()
    pio.renderers.default = RENDERER_NAME
    return RENDERER_NAME


def is_plotlyjs_output(output: dict) -> bool:
    """Whether a notebook output is the renderer's copy of plotly.js."""
    return bool((output.get("metadata") or {}).get(PLOTLYJS_OUTPUT))
