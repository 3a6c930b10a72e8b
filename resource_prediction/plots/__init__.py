"""Plotly figure builders: the notebooks and the book draw with these."""
