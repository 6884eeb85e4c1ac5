"""Baydin et al. 2018, Table 1: closed forms, hand-derived sizes and growth laws."""
import numpy as np
import pytest
import sympy

from diffkit.baydin import X, BAYDIN_CLOSED_FORMS, baydin_table1, growth, logistic_map


@pytest.fixture(scope="module")
def table():
    return baydin_table1(8)


def test_paper_closed_forms_match(table):
    assert table.loc[1:4, "closed_form_ok"].tolist() == [True] * 4
    assert table.loc[5:, "closed_form_ok"].isna().all()


def test_closed_forms_at_zero_and_one_half():
    # by hand: l_n'(0) = 4^(n-1) (each step multiplies by 4 (1 - 2 l) = 4 at l = 0);
    # at x = 1/2, l_2 = 1 and l_n = 0 for n >= 3, so l_n'(1/2) = 0 for n >= 2
    for n, (l_paper, d_paper) in BAYDIN_CLOSED_FORMS.items():
        d = sympy.diff(logistic_map(X, n), X)
        assert d.subs(X, 0) == d_paper.subs(X, 0) == 4 ** (n - 1)
        if n >= 2:
            assert d.subs(X, sympy.Rational(1, 2)) == 0


def test_small_sizes_by_hand(table):
    # l_2 = 4 x (1 - x): Mul(4, x, 1 - x) is 2 ops, 1 - x one SUB -> 3; its derivative 4 - 8x -> 2 ops
    assert table.loc[2, "l_n"] == 3 and table.loc[2, "expanded"] == 2
    # expanded dl_n/dx is a polynomial of degree 2^(n-1) - 1 with every power present:
    # 2^(n-1) - 1 additions plus one multiply and one power per term of degree >= 2 (and one multiply for x)
    for n in range(3, 9):
        deg = 2 ** (n - 1) - 1
        assert table.loc[n, "expanded"] == deg + 1 + 2 * (deg - 1)


def test_tape_is_linear_and_naive_swells(table):
    n = table["n"].to_numpy()
    assert (table["tape"].to_numpy() == 3 * n - 1).all()  # leaf + indexing + 3 ops per step
    assert growth(n, table["tape"])["slope"] == pytest.approx(3.0)
    assert growth(n, table["naive"])["ratio"] > 2.5  # exponential: at least doubling per step
    naive = table["naive"].to_numpy()[2:]
    ratio = naive / (n[2:] ** 2 * 2.0 ** n[2:])
    assert np.ptp(ratio) < 0.06  # n^2 2^n / 3 in SymPy's flattened products
    assert (table["cse"] < table["naive"]).loc[4:].all() and (table["dag"] < table["naive"]).loc[4:].all()


def test_paper_naive_column_is_the_product_rule_on_the_closed_form(table):
    # n = 2: d/dx 4x(1 - x) by the product rule is 4(1 - x) - 4x, which SymPy writes 4 - 8x: 2 ops
    assert table.loc[2, "paper_naive"] == 2
    # n = 3: 16(1 - x)(1 - 2x)^2 - 16x(1 - 2x)^2 + 16x(1 - x)(8x - 4): 19 ops, fewer than the nested program's 21
    assert table.loc[3, "paper_naive"] == 19 and table.loc[3, "naive"] == 21
    assert table.loc[4, "paper_naive"] < table.loc[4, "naive"] == 82
    assert table.loc[5:, "paper_naive"].isna().all()  # the paper gives closed forms up to n = 4
