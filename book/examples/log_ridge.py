"""A new model family's module: ridge regression of the log peak plus a learnt margin.

The worked example of the book's "Extending the project" page: in the project this file is
``resource_prediction/models/log_ridge.py`` and the family is one more entry of ``MODEL_FAMILIES``
in ``resource_prediction/registry.py``. ``tests/test_book.py`` does exactly that in a copy of the
package, from the page's text, then searches and evaluates the family through the command line.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import Ridge
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from resource_prediction.models.base import BasePredictor, suggest_preprocessor_params


class LogRidgeMargin(BasePredictor):
    """Ridge regression of ``log(peak)``; allocates ``exp(prediction + margin)``.

    The margin is the ``quantile`` of the training residuals in log space, so about ``quantile`` of
    the training jobs fit in their allocation.

    Parameters
    ----------
    alpha : float
        Ridge regularisation strength (on standardised features).
    quantile : float
        Share of training jobs whose peak the allocation should cover, in (0, 1).

    Attributes
    ----------
    scaler_ : StandardScaler
    ridge_ : Ridge
    margin_ : float
        Log-space margin added to every prediction.
    """

    #: One-hot features from the preprocessor: a linear model cannot use category codes.
    preferred_encoding = "onehot"

    def __init__(self, alpha: float = 1.0, quantile: float = 0.95):
        self.alpha = alpha
        self.quantile = quantile

    def fit(self, X, y):
        """Fit the ridge on the log peaks and learn the margin; return ``self``."""
        Xa, y = self._validate_fit(X, y)
        if not 0.0 < self.quantile < 1.0:
            raise ValueError(f"quantile must be in (0, 1), got {self.quantile}")
        Xa = np.nan_to_num(Xa)
        self.scaler_ = StandardScaler().fit(Xa)
        self.ridge_ = Ridge(alpha=self.alpha).fit(self.scaler_.transform(Xa), np.log(y))
        residuals = np.log(y) - self.ridge_.predict(self.scaler_.transform(Xa))
        self.margin_ = float(np.quantile(residuals, self.quantile))
        return self

    def _predict(self, Xa: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "ridge_")
        return np.exp(self.ridge_.predict(self.scaler_.transform(np.nan_to_num(Xa))) + self.margin_)


def search_space(trial) -> dict:
    """Optuna define-by-run space: the preprocessor's feature set, the ridge and the margin."""
    return {
        **suggest_preprocessor_params(trial),
        "alpha": trial.suggest_float("alpha", 1e-3, 1e3, log=True),
        "quantile": trial.suggest_float("quantile", 0.80, 0.995),
    }
