"""txratchet tests: run with pytest (pytest-twisted) or trial."""
