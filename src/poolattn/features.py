"""Texts (+ optional instructions) -> padded token batches with an explicit EOS and a pooling mask.

Three pitfalls handled here once, for encoding and training alike:
- Llama/Mistral tokenizers do not add EOS by default and `add_eos_token` is honoured by some tokenizer classes
  only, so EOS is appended by hand after truncation (it is never cut off).
- When pad == eos the mask can not be rebuilt from pad ids (the real EOS would vanish): the mask is built here.
- Instruction tokens are marked so mean-style pooling can leave them out (LLM2Vec, NV-Embed), found from the
  character offsets of the joint tokenisation, so the text is tokenised exactly as the model sees it. Special
  tokens the tokenizer puts first (Mistral's and Llama's BOS) are never instruction tokens: a query pools BOS +
  its text exactly as a document pools BOS + the document.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

logger = logging.getLogger(__name__)


def format_query(text: str, instruction: str | None, template: str) -> tuple[str, int]:
    """(full text, length of the instruction prefix in characters); E5 form `Instruct: {i}\\nQuery: {text}`.

    The prefix includes its trailing whitespace: a token made only of prefix characters is an instruction token.
    """
    if not instruction:
        return text, 0
    prefix = template.format(instruction=instruction)
    return prefix + text, len(prefix)


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
    """Token ids of one text: `ids` ends with EOS; `ids[special : special + instruction_tokens]` is the instruction.

    `special` counts the special tokens the tokenizer puts first (BOS), which are pooled like the text.
    """

    ids: list[int]
    instruction_tokens: int
    truncated: bool
    special: int = 0


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

    def _instruction_tokens(self, offsets: list[tuple[int, int]], boundary: int, special: int) -> int:
        # A token after the leading special ones is part of the instruction when its characters end in the prefix.
        count = 0
        for start, end in offsets[special:]:
            if end <= boundary:
                count += 1
            else:
                break
        return count

    def _instruction_tokens_slow(self, ids: list[int], full: str, boundary: int, special: int) -> int:
        # No offsets: the longest tokenisation of the prefix (with or without its trailing whitespace) that the
        # joint ids start with; a tokenizer may merge the trailing space into the text's first token.
        prefix = full[:boundary]
        for candidate in (prefix, prefix.rstrip()):
            alone = self.tokenizer(candidate, add_special_tokens=True)["input_ids"]
            if alone and alone[-1] == self.eos_id:
                alone = alone[:-1]
            if ids[: len(alone)] == alone:
                return len(alone) - special
        return len(alone) - special

    def tokenize(self, texts: Sequence[str], instructions: Sequence[str | None] | None = None) -> list[Tokenized]:
        """Tokenise without padding; truncation keeps the start (instruction first) and leaves room for EOS."""
        texts = check_texts(texts)
        instructions = list(instructions) if instructions is not None else [None] * len(texts)
        if len(instructions) != len(texts):
            raise ValueError(f"got {len(texts)} texts but {len(instructions)} instructions")
        formatted = [format_query(t, i, self.template) for t, i in zip(texts, instructions)]
        fulls = [f for f, _ in formatted]
        want_offsets = any(b for _, b in formatted) and getattr(self.tokenizer, "is_fast", False)
        want_special = any(b for _, b in formatted)
        encoded = self.tokenizer(fulls, add_special_tokens=True, return_offsets_mapping=want_offsets,
                                 return_special_tokens_mask=want_special)
        out: list[Tokenized] = []
        limit = self.max_length - 1  # room for EOS
        for row, (full, boundary) in enumerate(formatted):
            ids = list(encoded["input_ids"][row])
            if ids and ids[-1] == self.eos_id:  # tokenizers that already add EOS
                ids = ids[:-1]
            n_instruction = special = 0
            if boundary:
                marks = encoded["special_tokens_mask"][row]
                while special < len(marks) and marks[special]:
                    special += 1
                if want_offsets:
                    n_instruction = self._instruction_tokens(encoded["offset_mapping"][row], boundary, special)
                else:
                    n_instruction = self._instruction_tokens_slow(ids, full, boundary, special)
            truncated = len(ids) > limit
            ids = ids[:limit] + [self.eos_id]
            special = min(special, len(ids) - 1)
            out.append(Tokenized(ids, max(0, min(n_instruction, len(ids) - 1 - special)), truncated, special))
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
            pool[row, start : start + n] = 1
            if self.exclude_instruction:  # BOS (item.special tokens) stays pooled, the instruction does not
                first = start + item.special
                pool[row, first : first + item.instruction_tokens] = 0
        position_ids = (attention.cumsum(dim=1) - 1).clamp(min=0)
        return {"input_ids": input_ids, "attention_mask": attention, "pool_mask": pool, "position_ids": position_ids}

    def __call__(self, texts: Sequence[str], instructions: Sequence[str | None] | None = None) -> dict[str, Tensor]:
        return self.collate(self.tokenize(texts, instructions))
