"""Sphinx hooks that keep the published book offline, light and free of console errors.

* plotly.js is served once from ``_static/plotly.min.js`` (the copy shipped in the ``plotly``
  package) and loaded only by pages that draw a figure; the executed notebooks' own copy of plotly.js
  is left out of the book's notebooks (see :func:`resource_prediction.pipeline.write_book_copy`).
* Scripts that two extensions add twice to a page (sphinx-thebe's ``THEBE_JS_URL`` declaration,
  sphinx-togglebutton's selector) are kept once: a second ``const`` declaration is a script error.
* The theme's colour mode defaults to ``auto`` (an empty mode is a console error).
* Signatures whose defaults are paths of the project show them as ``<project>/...``.
* Theme template files that Sphinx copies into ``_static`` (``*webpack-macros.html``) are removed:
  they are no pages.

MathJax itself comes from the ``sphinx-mathjax-offline`` extension (``_static/mathjax``).
"""

from __future__ import annotations

from pathlib import Path

PLOTLY_JS = "plotly.min.js"
TEMPLATE_FILES = ("webpack-macros.html", "sbt-webpack-macros.html")


def _plotly_source() -> Path:
    import plotly

    return Path(plotly.__file__).parent / "package_data" / PLOTLY_JS


def _default_mode(app, config) -> None:
    context = dict(config.html_context or {})
    context.setdefault("default_mode", "auto")  # pydata-sphinx-theme reads it from the context
    config.html_context = context


def _page_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if scripts:
        seen, unique = set(), []
        for script in scripts:
            attributes = getattr(script, "attributes", {}) or {}
            # An inline script is added once with filename None and once with "": the same script.
            name = getattr(script, "filename", script) or ""
            key = (str(name), tuple(sorted((k, str(v)) for k, v in attributes.items())))
            if key not in seen:
                seen.add(key)
                unique.append(script)
        scripts[:] = unique
    if "plotly-graph-div" in context.get("body", ""):
        app.add_js_file(PLOTLY_JS, priority=200)


def _finish(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    from sphinx.util.fileutil import copy_asset_file

    static = Path(app.outdir) / "_static"
    copy_asset_file(str(_plotly_source()), str(static))
    for name in TEMPLATE_FILES:
        (static / name).unlink(missing_ok=True)


def _relative_signature(app, what, name, obj, options, signature, return_annotation):
    """Defaults under the project (``PipelineConfig(notebook_dir=...)``) shown as ``<project>/...``,
    not as the build machine's absolute path."""
    from resource_prediction.pipeline import PROJECT_ROOT

    root = str(PROJECT_ROOT)
    if signature and root in signature:
        return signature.replace(root, "<project>"), return_annotation
    return None


def setup(app):
    app.connect("config-inited", _default_mode)
    app.connect("autodoc-process-signature", _relative_signature)
    app.connect("html-page-context", _page_scripts)
    app.connect("build-finished", _finish)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
