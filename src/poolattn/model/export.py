"""Export a poolattn model to a sentence-transformers folder that gives the same embeddings.

Two layouts, chosen by the pooling head:

- `eos` pooling has a native equivalent, so the folder is plain sentence-transformers: a `Transformer` module
  over the merged backbone (LoRA folded in, in float32; `is_causal=False` saved in config.json for bidirectional
  attention), `Pooling(pooling_mode="lasttoken")` and `Normalize`. The tokenizer gets a post-processor that
  appends EOS, so truncation keeps room for it exactly as poolattn does. It loads with
  `SentenceTransformer(out)`, no extra arguments, even without poolattn installed.
- `latent`, `multilayer` and `mean` go through `poolattn.model.st_module.PoolattnModule`, which runs poolattn's own
  tokenisation and forward. Mean pooling is not native because poolattn leaves instruction tokens out of the pool
  with a boundary taken from the joint tokenisation, while sentence-transformers' `include_prompt=False`
  counts the prompt tokenised alone, whose trailing space is a token of its own: the first text token would be
  dropped too. Such a folder loads with `SentenceTransformer(out, trust_remote_code=True)`, because
  sentence-transformers 6 imports module classes from outside its own package only with that flag; the class
  comes from the installed poolattn package, nothing is executed from the folder.

Either way the query instruction is saved as the prompt named "query" (`encode_query` uses it) and documents
get none, as `Embedder.encode` does.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from poolattn.errors import InputError, OutputPathError
from poolattn.model.card import CARD_FILE, render
from poolattn.model.embedder import DEFAULT_QUERY_INSTRUCTION, Embedder
from poolattn.model.st_module import PoolattnModule

logger = logging.getLogger(__name__)

DEFAULT_INSTRUCTION = DEFAULT_QUERY_INSTRUCTION
NATIVE_POOLING = {"eos": "lasttoken"}


def _appends_eos(tokenizer: Any) -> bool:
    ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    return bool(ids) and ids[-1] == tokenizer.eos_token_id


def _add_eos_post_processor(folder: Path, tokenizer: Any) -> None:
    """Make the saved fast tokenizer add EOS after the text, keeping the special tokens it adds itself (BOS).

    The special tokens the tokenizer adds are read off a probe text, and one template puts them back with EOS
    last. The Rust tokenizer counts a post-processor's tokens when it truncates, so `max_length` keeps room for
    EOS: the ids are the text's first tokens (BOS included) up to max_length - 1, then EOS, as in poolattn.
    """
    from tokenizers import Tokenizer, processors

    if _appends_eos(tokenizer):
        return
    path = folder / "tokenizer.json"
    if not path.is_file():
        raise InputError(
            "the tokenizer of this model has no tokenizer.json (a slow tokenizer); the sentence-transformers "
            "export needs a fast tokenizer to append EOS"
        )
    probe = "poolattn probe text"
    plain = tokenizer(probe, add_special_tokens=False)["input_ids"]
    special = tokenizer(probe, add_special_tokens=True)["input_ids"]
    starts = [i for i in range(len(special) - len(plain) + 1) if special[i : i + len(plain)] == plain]
    if not starts:
        raise InputError("could not find where the tokenizer puts its special tokens; export needs a fast tokenizer")
    prefix, suffix = special[: starts[0]], special[starts[0] + len(plain) :]
    eos = int(tokenizer.eos_token_id)
    pieces = [*prefix, "$A", *suffix, eos]
    template = [piece if piece == "$A" else tokenizer.convert_ids_to_tokens(piece) for piece in pieces]
    special_tokens = sorted({(tokenizer.convert_ids_to_tokens(i), i) for i in [*prefix, *suffix, eos]})
    backend = Tokenizer.from_file(str(path))
    backend.post_processor = processors.TemplateProcessing(single=template, special_tokens=special_tokens)
    backend.save(str(path))


def _native_modules(model: Embedder, work: Path) -> list[Any]:
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    model.save(work, merge_lora=True)
    backbone = work / "backbone"
    model.tokenizer.save_pretrained(backbone)
    _add_eos_post_processor(backbone, model.tokenizer)
    config_path = backbone / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config.update(padding_side="right", model_max_length=model.max_length)
    config_path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    transformer = Transformer(
        str(backbone),
        model_kwargs={"dtype": next(model.backbone.parameters()).dtype,
                      "attn_implementation": model.config.attn_implementation},
        max_seq_length=model.max_length,
        # text in, token states out: without this a tokenizer with a chat template (SmolLM2's) makes
        # sentence-transformers wrap every text in chat messages
        modality_config={"text": {"method": "forward", "method_output_name": "last_hidden_state"}},
        module_output_name="token_embeddings",
    )
    pooling = Pooling(model.embedding_dim, pooling_mode=NATIVE_POOLING[model.config.pooling.name])
    return [transformer, pooling, Normalize()]


def _write_card(out: Path, meta_file: Path, source: Path | None) -> None:
    """The model card of the export: the source folder's training and evaluation records, loading with ST."""
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    folder = source if source is not None and (source / "poolattn.json").is_file() else out
    (out / CARD_FILE).write_text(render(folder, meta, export=out), encoding="utf-8")


def export_sentence_transformers(
    model: Embedder | str | Path,
    out: str | Path,
    *,
    instruction: str = DEFAULT_INSTRUCTION,
    source: str | Path | None = None,
    backbone: str | None = None,
    trust_remote_code: bool = False,
) -> Path:
    """Write `model` (an Embedder or a saved folder) to `out` as a sentence-transformers model; returns `out`.

    The export's model card (README.md) takes the training and evaluation records of the saved folder: `model`
    itself when it is a folder, else `source`.

    Raises:
        FileExistsError: `out` exists and is not empty (nothing is overwritten).
    """
    from sentence_transformers import SentenceTransformer

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise OutputPathError(f"output folder {str(out)!r} is not empty; choose a new folder for the export")
    if not isinstance(model, Embedder):
        source = model
        model = Embedder.load(model, device="cpu", dtype="float32", backbone=backbone,
                              trust_remote_code=trust_remote_code)
    prompts = {"query": model.config.instruction_template.format(instruction=instruction), "document": ""}
    with tempfile.TemporaryDirectory(prefix="poolattn-export-") as tmp:
        if model.config.pooling.name in NATIVE_POOLING:
            modules = _native_modules(model, Path(tmp))
        else:
            modules = [PoolattnModule(model)]
        st = SentenceTransformer(modules=modules, prompts=prompts, similarity_fn_name="cosine", device="cpu")
        st.save(str(out), create_model_card=False)
        meta_file = Path(tmp) / "poolattn.json" if (Path(tmp) / "poolattn.json").is_file() else out / "poolattn.json"
        _write_card(out, meta_file, Path(source) if source is not None else None)
    logger.info("exported %s pooling (%s attention) to %s", model.config.pooling.name, model.config.attention, out)
    return out


def needs_trust_remote_code(pooling: str) -> bool:
    """Whether an export of this pooling head loads only with `trust_remote_code=True` (see the module docstring)."""
    return pooling not in NATIVE_POOLING
