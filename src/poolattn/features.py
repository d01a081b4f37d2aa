"""Texts (+ optional instructions) -> padded token batches with an explicit EOS and a pooling mask.

Three pitfalls handled here once, for encoding and training alike:
- Llama/Mistral tokenizers do not add EOS by default and `add_eos_token` is honoured by some tokenizer classes
  only, so EOS is appended by hand after truncation (it is never cut off).
- When pad == eos the mask can not be rebuilt from pad ids (the real EOS would vanish): the mask is built here.
- Instruction tokens are marked so mean-style pooling can leave them out (LLM2Vec, NV-Embed), found from the
  character offsets of the joint tokenisation, so the text is tokenised exactly as the model sees it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

logger = logging.getLogger(__name__)


def format_query(text: str, instruction: str | None, template: str) -> tuple[str, int]:
    """(full text, length of the instruction prefix in characters); E5 form `Instruct: {i}\\nQuery: {text}`."""
    if not instruction:
        return text, 0
    prefix = template.format(instruction=instruction)
    return prefix + text, len(prefix.rstrip())


def check_texts(texts: Sequence[object], what: str = "texts") -> list[str]:
    """The texts as a list of str; a None or non-string item raises naming its index."""
    if isinstance(texts, str):
        raise TypeError(f"{what} must be a list of strings, got a single string; wrap it: [{texts[:40]!r}]")
    out = list(texts)
    for index, text in enumerate(out):
        if not isinstance(text, str):
            raise TypeError(f"{what}[{index}] is {type(text).__name__} ({text!r:.60}); every item must be a string")
    return out


@dataclass
class Tokenized:
    """Token ids of one text: `ids` ends with EOS; the first `instruction_tokens` ids belong to the instruction."""

    ids: list[int]
    instruction_tokens: int
    truncated: bool


class TextTokenizer:
    """Turns texts into model inputs: ids + EOS, attention mask, pooling mask, position ids."""

    def __init__(
        self, tokenizer, *, max_length: int, padding_side: str, template: str, exclude_instruction: bool
    ) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.padding_side = padding_side
        self.template = template
        self.exclude_instruction = exclude_instruction
        self.eos_id = int(tokenizer.eos_token_id)
        self.pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)

    def _instruction_tokens(self, offsets: list[tuple[int, int]], boundary: int) -> int:
        # A token is part of the instruction when its characters end inside the prefix (BOS has (0, 0)).
        count = 0
        for start, end in offsets:
            if end <= boundary:
                count += 1
            else:
                break
        return count

    def tokenize(self, texts: Sequence[str], instructions: Sequence[str | None] | None = None) -> list[Tokenized]:
        """Tokenise without padding; truncation keeps the start (instruction first) and leaves room for EOS."""
        texts = check_texts(texts)
        instructions = list(instructions) if instructions is not None else [None] * len(texts)
        if len(instructions) != len(texts):
            raise ValueError(f"got {len(texts)} texts but {len(instructions)} instructions")
        formatted = [format_query(t, i, self.template) for t, i in zip(texts, instructions)]
        fulls = [f for f, _ in formatted]
        want_offsets = any(b for _, b in formatted) and getattr(self.tokenizer, "is_fast", False)
        encoded = self.tokenizer(fulls, add_special_tokens=True, return_offsets_mapping=want_offsets)
        out: list[Tokenized] = []
        limit = self.max_length - 1  # room for EOS
        for row, (full, boundary) in enumerate(formatted):
            ids = list(encoded["input_ids"][row])
            if ids and ids[-1] == self.eos_id:  # tokenizers that already add EOS
                ids = ids[:-1]
            n_instruction = 0
            if boundary:
                if want_offsets:
                    n_instruction = self._instruction_tokens(encoded["offset_mapping"][row], boundary)
                else:
                    n_instruction = len(self.tokenizer(full[:boundary], add_special_tokens=True)["input_ids"])
            truncated = len(ids) > limit
            ids = ids[:limit] + [self.eos_id]
            out.append(Tokenized(ids, min(n_instruction, len(ids) - 1), truncated))
        return out

    def collate(self, items: Sequence[Tokenized]) -> dict[str, Tensor]:
        """Pad to the longest item: input_ids, attention_mask, pool_mask (B, T) and position_ids.

        Position ids count real tokens only, so a text gets the same positions whatever the padding side.
        """
        length = max(len(item.ids) for item in items)
        batch = len(items)
        input_ids = torch.full((batch, length), self.pad_id, dtype=torch.long)
        attention = torch.zeros((batch, length), dtype=torch.long)
        pool = torch.zeros((batch, length), dtype=torch.long)
        for row, item in enumerate(items):
            n = len(item.ids)
            start = length - n if self.padding_side == "left" else 0
            input_ids[row, start : start + n] = torch.tensor(item.ids, dtype=torch.long)
            attention[row, start : start + n] = 1
            skip = item.instruction_tokens if self.exclude_instruction else 0
            pool[row, start + skip : start + n] = 1
        position_ids = (attention.cumsum(dim=1) - 1).clamp(min=0)
        return {"input_ids": input_ids, "attention_mask": attention, "pool_mask": pool, "position_ids": position_ids}

    def __call__(self, texts: Sequence[str], instructions: Sequence[str | None] | None = None) -> dict[str, Tensor]:
        return self.collate(self.tokenize(texts, instructions))
