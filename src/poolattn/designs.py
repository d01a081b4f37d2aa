"""The study's five designs as one table, plus names for every other (pooling, attention) combination."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from poolattn.config import ATTENTION_MODES
from poolattn.errors import InputError


@dataclass(frozen=True)
class Design:
    """A (pooling, attention) pair; `number` is set for the paper's five designs."""

    pooling: str
    attention: str
    number: int | None = None

    @property
    def name(self) -> str:
        return f"{self.pooling}-{self.attention}"

    @property
    def label(self) -> str:
        return f"design {self.number} ({self.name})" if self.number else self.name

    def overrides(self) -> dict[str, Any]:
        """The config values this design sets, as a nested dict for `config.merge`."""
        return {"model": {"attention": self.attention, "pooling": {"name": self.pooling}}}


DESIGNS: dict[int, Design] = {
    1: Design("eos", "causal", 1),
    2: Design("latent", "causal", 2),
    3: Design("multilayer", "causal", 3),
    4: Design("latent", "bidirectional", 4),
    5: Design("multilayer", "bidirectional", 5),
}
_BY_NAME = {d.name: d for d in DESIGNS.values()}


def get_design(key: int | str) -> Design:
    """Design 1-5 by number (int or digit string) or by name; any `<pooling>-<attention>` pair is accepted.

    Raises:
        ValueError: neither a design number nor a known pooling/attention pair.
    """
    # lazy: pooling imports torch (~2.5 s), which the config tooling and `poolattn --help` do not need
    from poolattn.pooling import POOLERS

    text = str(key).strip()
    if text.isdigit():
        if int(text) in DESIGNS:
            return DESIGNS[int(text)]
        raise InputError(f"design {text} does not exist; choose 1-5 or a name such as {sorted(_BY_NAME)}")
    if text in _BY_NAME:
        return _BY_NAME[text]
    pooling, _, attention = text.rpartition("-")
    if pooling in POOLERS and attention in ATTENTION_MODES:
        return Design(pooling, attention)
    raise InputError(
        f"unknown design {text!r}; choose a number 1-5, one of {sorted(_BY_NAME)}, or '<pooling>-<attention>' "
        f"with pooling in {sorted(POOLERS)} and attention in {list(ATTENTION_MODES)}"
    )
