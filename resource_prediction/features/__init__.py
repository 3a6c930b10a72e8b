"""Feature engineering building blocks used by :class:`resource_prediction.preprocessing.ModelPreprocessor`.

* :mod:`~resource_prediction.features.raw`: stateless parsing of raw telemetry columns into arrays;
* :mod:`~resource_prediction.features.history`: the causal per-group memory history (rolling windows).
"""
