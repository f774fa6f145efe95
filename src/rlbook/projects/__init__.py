"""Code shared by the PyTorch projects part: models, training steps, deployment."""
