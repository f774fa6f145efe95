"""What the PyTorch projects share: resumable epoch runs and the held-out
split (``runs``), shipped model folders (``shipping``), the full-run scripts'
options and shipping (``script``), comparison tables (``deploy``).

Each project's own code (data preparation, model, recipe, run) is on its
page and in ``rlbook.chapters.resnet_cifar``, ``sentiment_imdb`` and
``vae_mnist``.
"""
