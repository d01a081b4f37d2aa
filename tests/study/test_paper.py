"""The paper's claims and the sign rule: one place, checked against the published ranges as numbers."""

from __future__ import annotations

import pytest

from poolattn.study.paper import PAPER_DELTAS, PaperClaim


def test_each_claim_has_the_sign_of_both_ends_of_its_range():
    assert set(PAPER_DELTAS) == {"sts", "retrieval", "classification", "clustering"}
    for category, claim in PAPER_DELTAS.items():
        assert claim.category == category
        assert claim.sign * claim.low > 0 and claim.sign * claim.high > 0
    assert [c for c, claim in PAPER_DELTAS.items() if claim.sign > 0] == ["sts", "retrieval"]


def test_the_sign_rule_reads_zero_as_neither_side():
    up, down = PAPER_DELTAS["sts"], PAPER_DELTAS["clustering"]
    assert up.on_its_side(0.001) and not up.on_its_side(-0.001) and not up.on_its_side(0.0)
    assert down.on_its_side(-0.2) and not down.on_its_side(0.2) and not down.on_its_side(0.0)


def test_a_range_across_zero_is_refused_with_its_values():
    with pytest.raises(ValueError, match=r"one side of 0, got -0.01 to 0.02 for 'sts'"):
        PaperClaim("sts", -0.01, 0.02, frozenset())
