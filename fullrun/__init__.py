"""What only the full-run scripts share, kept out of the ``rlbook`` package that
chapters import: the projects' run skeleton (``project``) and the one-run-per-
runs-folder lock (``lock``). A script puts its checkout on ``sys.path`` and
imports ``fullrun.NAME``; tests import it from the checkout's root."""
