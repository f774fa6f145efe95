"""rlbook.report.progress: a bar where a reader watches, nothing on a built page."""

from __future__ import annotations

from rlbook.report import BUILD_ENV_VAR, progress


def test_the_build_gets_a_bar_that_draws_nothing(monkeypatch, capsys):
    monkeypatch.setenv(BUILD_ENV_VAR, "1")
    bar = progress(total=3, desc="epochs")
    for _ in range(3):
        bar.update(1)
    bar.close()
    assert bar.disable
    assert capsys.readouterr() == ("", "")


def test_elsewhere_the_bar_counts_and_draws(monkeypatch, capsys):
    monkeypatch.delenv(BUILD_ENV_VAR, raising=False)
    bar = progress(total=2, desc="epochs")
    assert not bar.disable
    bar.update(2)
    bar.close()
    assert bar.n == 2 and "epochs" in capsys.readouterr().err  # a terminal here
    assert list(progress(range(3))) == [0, 1, 2]
