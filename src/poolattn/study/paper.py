"""The paper's claims this study checks, and the rule that reads a delta's sign against them.

Tang & Yang (2024), for Mistral-7B on MTEB, report the deltas of designs 2-5 over design 1 per task category as a
range over the four designs, and which of them were significant. Each category's range lies on one side of zero, so
a claim has one sign: the direction the paper says designs 2-5 move that category.
"""

from __future__ import annotations

from dataclasses import dataclass

REFERENCE_DESIGN = 1
"""The paper's deltas are over design 1 (EOS pooling, causal attention)."""

CLAIMED_DESIGNS = (2, 3, 4, 5)


@dataclass(frozen=True)
class PaperClaim:
    """The paper's delta range of designs 2-5 over design 1 on one category, and the designs it found significant."""

    category: str
    low: float
    high: float
    significant_for: frozenset[int]

    def __post_init__(self) -> None:
        if not (self.low <= self.high and (self.low > 0 or self.high < 0)):
            raise ValueError(f"a claim's range must lie on one side of 0, got {self.low} to {self.high} "
                             f"for {self.category!r}")

    @property
    def sign(self) -> int:
        """+1: the paper says designs 2-5 raise the category; -1: they lower it."""
        return 1 if self.low > 0 else -1

    def on_its_side(self, value: float) -> bool:
        """Whether `value` has the claim's sign (zero has neither)."""
        return value * self.sign > 0


PAPER_DELTAS: dict[str, PaperClaim] = {claim.category: claim for claim in (
    PaperClaim("sts", 0.0095, 0.0166, frozenset({2, 3, 4, 5})),
    PaperClaim("retrieval", 0.0102, 0.0226, frozenset({5})),
    PaperClaim("classification", -0.0483, -0.0033, frozenset({5})),
    PaperClaim("clustering", -0.0493, -0.0017, frozenset({5})),
)}
"""Published Mistral-7B deltas of designs 2-5 over design 1 (range over the four designs), in the report's order."""
