"""Memory predictors: every model answers how many GB to allocate to each job."""
