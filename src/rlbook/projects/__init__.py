"""Code shared by the PyTorch projects part: data checks, models' helpers, shipped models, comparison tables."""
