"""A plotly renderer for notebooks that are published as a static, offline book.

MyST-NB (Jupyter Book) drops plotly's own mimetype, so figures must be HTML. Plotly's ``notebook``
renderer writes HTML and embeds plotly.js once per notebook (``notebook_connected`` loads it from a CDN
instead, which fails offline), but every figure it draws also loads MathJax from a CDN. The
``notebook_offline`` renderer registered here is the ``notebook`` renderer without that request: pages
work with no network at all. The figures still show in JupyterLab.
"""

from __future__ import annotations

import plotly.io as pio

RENDERER_NAME = "notebook_offline"
#: Plotly's ``notebook`` renderer class, reached through the public renderer registry (its module,
#: ``plotly.io._base_renderers``, is private).
NotebookRenderer = type(pio.renderers["notebook"])


class OfflineNotebookRenderer(NotebookRenderer):
    """Plotly's ``notebook`` renderer (plotly.js embedded once) without MathJax from a CDN."""

    def to_mimebundle(self, fig_dict):
        html = pio.to_html(
            fig_dict,
            config=self.config,
            auto_play=self.auto_play,
            include_plotlyjs=self.include_plotlyjs,
            include_mathjax=False,
            post_script=self.post_script,
            full_html=False,
            animation_opts=self.animation_opts,
            default_width="100%",
            default_height=525,
            validate=False,
        )
        return {"text/html": html}


def use_offline_renderer() -> str:
    """Register the ``notebook_offline`` renderer and make it plotly's default; return its name."""
    if RENDERER_NAME not in pio.renderers:
        pio.renderers[RENDERER_NAME] = OfflineNotebookRenderer()
    pio.renderers.default = RENDERER_NAME
    return RENDERER_NAME
