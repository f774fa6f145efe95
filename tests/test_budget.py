import pytest

from rlbook.budget import (
    BUDGETS,
    DEFAULT_BUDGET,
    BudgetError,
    get_budget,
    pick,
    validate_budget,
)


def test_default_budget_when_unset(monkeypatch):
    monkeypatch.delenv("RLBOOK_BUDGET", raising=False)
    assert get_budget() == DEFAULT_BUDGET == "ci"


@pytest.mark.parametrize(
    "raw, expected", [("smoke", "smoke"), (" FULL ", "full"), ("ci", "ci")]
)
def test_budget_read_from_environment(monkeypatch, raw, expected):
    monkeypatch.setenv("RLBOOK_BUDGET", raw)
    assert get_budget() == expected


def test_unknown_budget_lists_the_valid_ones(monkeypatch):
    monkeypatch.setenv("RLBOOK_BUDGET", "fast")
    with pytest.raises(BudgetError) as error:
        get_budget()
    for name in BUDGETS:
        assert name in str(error.value)
    assert "'fast'" in str(error.value)


def test_pick_chooses_the_value_of_the_budget(monkeypatch):
    values = {"smoke": 1, "ci": 2, "full": 3}
    for name, value in values.items():
        monkeypatch.setenv("RLBOOK_BUDGET", name)
        assert pick(**values) == value


def test_pick_with_explicit_budget_is_validated():
    assert pick(smoke="a", ci="b", full="c", budget="full") == "c"
    with pytest.raises(BudgetError):
        pick(smoke="a", ci="b", full="c", budget="huge")


def test_validate_budget_normalises():
    assert validate_budget("Smoke") == "smoke"
