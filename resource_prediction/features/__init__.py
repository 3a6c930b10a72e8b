"""Feature engineering building blocks used by :class:`resource_prediction.preprocessing.ModelPreprocessor`.

* :mod:`~resource_prediction.features.raw`: stateless parsing of raw telemetry columns into arrays;
* :mod:`~resource_prediction.features.history`: the causal per-group memory history (rolling windows);
* :mod:`~resource_prediction.features.vpa`: the Vertical Pod Autoscaler's decaying histogram;
* :mod:`~resource_prediction.features.static_level`: the ridge regression of ``log(peak)`` on a
  job's configuration;
* :mod:`~resource_prediction.features.level`: the job-adjusted level ``hist_grp_level``.
"""
