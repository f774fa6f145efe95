"""Code shared by the PyTorch projects: data checks, shipped models, comparison tables."""
