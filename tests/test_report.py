"""rlbook.report: the page header, and glue with and without MyST-NB."""

import builtins
import sys

import pytest
import torch

from rlbook.report import glue, run_header_markdown


def test_run_header_names_budget_and_device():
    text = run_header_markdown(torch.device("cpu"), "smoke")
    assert "`smoke`" in text and "without a GPU" in text


@pytest.fixture
def no_myst_nb(monkeypatch):
    """Make `import myst_nb` fail, as in Colab."""
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "myst_nb" or name.startswith("myst_nb."):
            raise ImportError("No module named 'myst_nb'")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "myst_nb", raising=False)
    monkeypatch.setattr(builtins, "__import__", fake_import)


def test_glue_without_myst_nb_prints_quoted_values(no_myst_nb, capsys, monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda value: shown.append(value))
    glue("mean_return", 487.123456789, display=False)
    glue("variant", "baseline", display=False)
    glue("table", {"a": 1}, display=False)
    glue("shown", 3.0)
    assert capsys.readouterr().out == "mean_return = 487.123\nvariant = baseline\n"
    assert shown == [{"a": 1}, 3.0]


def test_glue_with_myst_nb_records_for_the_page(monkeypatch):
    recorded = []
    pytest.importorskip("myst_nb")
    monkeypatch.setattr(
        "myst_nb.glue", lambda name, value, display=True: recorded.append((name, value))
    )
    glue("x", 1.5, display=False)
    assert recorded == [("x", 1.5)]
