"""What the PyTorch projects share: resumable epoch runs and the held-out
split (``runs``), shipped model folders (``shipping``), comparison tables
(``deploy``). The full-run scripts' skeleton is ``fullrun.project``, outside the
package.

Each project's own code (data preparation, model, recipe, run) is on its
page and in ``rlbook.chapters.resnet_cifar``, ``sentiment_imdb`` and
``vae_mnist``.
"""
