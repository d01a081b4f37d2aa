"""`PoolattnModule`: a whole poolattn `Embedder` as one sentence-transformers input module.

The trainable heads (latent, multilayer) and poolattn's tokenisation rules (EOS appended after truncation,
instruction tokens found from the joint tokenisation's offsets and left out of mean-style pooling, position ids
that count real tokens) have no sentence-transformers equivalent. Rather than re-implement them, this module
runs the same code `Embedder.encode` runs: `preprocess` is poolattn's `TextTokenizer` with the prompt as the
instruction prefix, `forward` is `Embedder.forward`. The folder it saves is an `Embedder.save(merge_lora=True)`
folder, so it also loads with `Embedder.load`.

sentence-transformers 6 imports a module class named in modules.json from outside its own package only when
the caller passes `trust_remote_code=True`; this class comes from the installed poolattn package (no code is
read from the model folder).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sentence_transformers.base.modules.input_module import InputModule
from torch import Tensor

from poolattn.errors import InputNotFoundError
from poolattn.features import TextTokenizer
from poolattn.model.embedder import Embedder


class PoolattnModule(InputModule):
    """Texts -> poolattn features -> `Embedder.forward` -> features["sentence_embedding"] (unit rows)."""

    save_in_root = True

    def __init__(self, embedder: Embedder) -> None:
        super().__init__()
        self.embedder = embedder
        config = embedder.config
        # The prompt is already the formatted prefix ("Instruct: ...\nQuery: "): the template is the identity.
        self.text_tokenizer = TextTokenizer(
            embedder.tokenizer,
            max_length=embedder.text_tokenizer.max_length,
            padding_side=config.padding_side,
            template="{instruction}",
            exclude_instruction=config.exclude_instruction,
        )

    @property
    def tokenizer(self) -> Any:
        return self.embedder.tokenizer

    @property
    def max_seq_length(self) -> int:
        return self.text_tokenizer.max_length

    @max_seq_length.setter
    def max_seq_length(self, value: int) -> None:
        self.embedder.max_length = value  # checked against the backbone's context
        self.text_tokenizer.max_length = self.embedder.max_length

    def get_embedding_dimension(self) -> int:
        return self.embedder.embedding_dim

    get_sentence_embedding_dimension = get_embedding_dimension

    def preprocess(self, inputs: Sequence[str], prompt: str | None = None, **kwargs: Any) -> dict[str, Tensor]:
        texts = list(inputs)
        instructions = [prompt or None] * len(texts)
        return self.text_tokenizer(texts, instructions)

    def forward(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        embeddings = self.embedder(
            features["input_ids"], features["attention_mask"], features["pool_mask"], features["position_ids"]
        )
        features["sentence_embedding"] = embeddings
        return features

    def save(self, output_path: str, *args: Any, safe_serialization: bool = True, **kwargs: Any) -> None:
        self.embedder.save(output_path, merge_lora=True)

    @classmethod
    def load(cls, model_name_or_path: str, subfolder: str = "", **kwargs: Any) -> PoolattnModule:
        path = Path(model_name_or_path) / subfolder
        if not path.is_dir():
            raise InputNotFoundError(
                f"{str(path)!r} is not a local folder; a poolattn export loads from a folder on disk"
            )
        model_kwargs = kwargs.get("model_kwargs") or {}
        dtype = model_kwargs.get("dtype", model_kwargs.get("torch_dtype"))
        return cls(Embedder.load(path, device="cpu", dtype=dtype if dtype is not None else "float32"))
