"""DATA_CARD.md: rendered from the build summary, so the numbers in it are the numbers of the build.

Only the "Baselines" section is written by people (the evaluation work); a rebuild carries it over.
"""

from __future__ import annotations

import re
from typing import Any

BASELINES = "## Baselines"
BASELINES_PLACEHOLDER = (f"{BASELINES}\n\nResults are filled in by the evaluation work "
                         "(`poolattn evaluate` over this suite); none yet.\n")

_METHOD = """\
## Split rule

Every item of a training source has a key: `debian:<package>`, `wordnet:<pos>:<offset>`, `foldoc:<headword>`
and, for the Bible, the chapter `bible:<Book>.<chapter>` (a whole chapter goes to one side, so a verse and
its neighbours, which are its hard negatives, are never split). An item belongs to the evaluation side iff
`int(sha1(key)[:16 hex], 16) % 100 < 15`. Training triples use only training-side items, for their
negatives too; evaluation tasks use only evaluation-side items. The builder asserts both that no split key
and that no text of a source appears on both sides (`build.verify`), and `tests/databuild` checks the
committed files again. Evaluation-only sources (20 Newsgroups, TREC, SMS spam, Rotten Tomatoes, word
similarity) never enter the training set.

Every "random" choice (subsamples, negatives, the shuffle) is a sort by a salted SHA-1 of the item key,
so the build is reproducible without an RNG; gzip files are written with mtime 0 and no file name.

## Cleaning and deduplication

- All texts: whitespace collapsed to single spaces; longer than 600 characters cut at a word boundary.
- Dedup key: lowercase text with punctuation removed; the first item (in a fixed order) wins.
- Debian: descriptions are joined with the amd64 Packages index by package and Description-md5 (sections
  come from there). Transitional, dummy, meta and debug-symbol packages and the `oldlibs` section are
  dropped (template descriptions). One binary package per source package is kept (families share
  paragraphs), then repeats of a description, of its first 200 characters, or of a synopsis are dropped.
- WordNet: definitions are glosses without their quoted examples; definitions under 3 words, repeated
  definitions and repeated lemma lists (ambiguous queries) are dropped. The query is up to five lemmas.
- Bible: OSIS markup is stripped by the builder; a removed footnote or line break between two words becomes
  a space, which repairs the WEB's glued words ("Godcreated"). Verses are paired by reference only in
  chapters that both versifications number alike; verses under 4 words and repeated verse texts (e.g.
  "And the LORD spake unto Moses, saying,") are dropped.
- FOLDOC: categories (`<programming>`) become labels and leave the text; cross-reference braces, dates,
  `[{Jargon File}]`-style source notes and pronunciations are removed; stubs under 8 words (pure
  cross-references) and repeats are dropped.

## Hard negatives (training)

| source | query | positive | hard negative |
| --- | --- | --- | --- |
| debian | package synopsis | its long description | long description of another package of the same archive section (different source package) |
| wordnet | up to five lemmas of a synset | its definition | definition of a sibling synset (same hypernym; for satellite adjectives the same head adjective) |
| bible | KJV verse | the WEB text of the same verse | WEB text of the nearest other verse of the same chapter (distance 1, else 2, else 3) |
| foldoc | headword | its definition | definition of another term of the same FOLDOC category, else of an alphabetical neighbour (within 3) |

Records are shuffled together; the `source` field lets a trainer draw each batch from one source, which
makes in-batch negatives harder and more useful than mixed batches.

## What is not available offline

No standard embedding benchmark ships in any package reachable here (PyPI, Debian, npm): no MS MARCO, NQ,
BEIR, SNLI/MultiNLI, STS-B/SICK or MTEB data. The only graded human similarity judgements found are
SimLex-999 and WordSim-353 (word pairs, in the gensim wheel's test data); the STS-category tasks use exactly
those scores and nothing else. There is no graded sentence-level STS data, so none is invented. GCIDE
(`dict-gcide`) was considered as a further definition source but left out: its 1913 Webster markup is heavy
and WordNet and FOLDOC already cover term -> definition. The 20 Newsgroups and Reuters copies are
lowercased with punctuation removed by their preparer; Reuters is not used.
"""


_BASELINES_SECTION = re.compile(rf"^{re.escape(BASELINES)}\n.*?(?=^## |\Z)", flags=re.S | re.M)
"""The Baselines heading and everything up to the next section or the end of the card."""


def without_baselines(text: str) -> str:
    """The card with its Baselines section removed (what `check` compares)."""
    return _BASELINES_SECTION.sub("", text)


def with_baselines(text: str, section: str) -> str:
    """The card with its Baselines section replaced by `section` (which starts with the heading), as a
    rebuild would render it: one newline after the section, and a blank line before any section after it."""
    if not section.startswith(BASELINES + "\n"):
        raise ValueError(f"a Baselines section starts with {BASELINES!r} on its own line, got {section[:40]!r}")
    if not _BASELINES_SECTION.search(text):
        raise ValueError(f"the card has no {BASELINES!r} section to replace")
    body = section.rstrip("\n") + "\n"
    return _BASELINES_SECTION.sub(lambda m: body + ("\n" if m.end() < len(text) else ""), text, count=1)


def _baselines(previous: str | None) -> str:
    match = _BASELINES_SECTION.search(previous) if previous else None
    return match.group(0).rstrip("\n") + "\n" if match else BASELINES_PLACEHOLDER


def _sources_table(summary: dict[str, Any]) -> list[str]:
    lines = ["| source | registry | package | version | file inside | sha256 (first 12) | license |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, src in summary["sources"].items():
        for p in src["provenance"]:
            lines.append(f"| {name} | {p['registry']} | {p['package']} | {p['version']} | "
                         f"`{p['artifact']}`: `{p['member']}` | {p['sha256'][:12]} | {p['license']} |")
    return lines


def _counts(summary: dict[str, Any]) -> list[str]:
    lines = []
    for name, src in summary["sources"].items():
        lines.append(f"**{name}**")
        lines.append("")
        for step, n in src["stats"].items():
            lines.append(f"- {step}: {n:,}")
        if src.get("split"):
            lines.append(f"- split: {src['split']['training side']:,} training side, "
                         f"{src['split']['evaluation side']:,} evaluation side")
        for note in src.get("notes", []):
            lines.append(f"- note: {note}")
        lines.append("")
    return lines


def _training(summary: dict[str, Any]) -> list[str]:
    t = summary["training"]
    lines = [f"`{t['file']}`: {t['records']:,} records, one JSON object per line with keys "
             "`id, query, positive, negative, instruction, source`.", "",
             "| source | training-side items | triples | skipped (no hard negative) |",
             "| --- | --- | --- | --- |"]
    for source, s in t["by_source"].items():
        lines.append(f"| {source} | {s['training-side items']:,} | {s['triples']:,} | "
                     f"{s['skipped (no hard negative)']:,} |")
    o = t.get("overlaps")
    if o:
        shared = ", ".join(f"{source} {n:,}" for source, n in o["by source"].items())
        lines += ["", f"Overlaps: {o['hard negatives equal to another positive']:,} of the "
                  f"{o['hard negatives']:,} hard negatives are another record's positive ({shared}). "
                  "In a batch holding both records that text would be a false negative of the other record's "
                  "query; training masks every copy of a query's own positive out of its softmax. "
                  f"{o['records repeating another record']:,} records repeat another record exactly; "
                  f"{o['records sharing their query with another record']:,} records share their query text with "
                  "another record (with different positives)."]
    return lines


def _tasks(summary: dict[str, Any]) -> list[str]:
    lines = ["| task | category | source | size | texts | ~tokens | main score | instruction |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for task in summary["tasks"]:
        c = task["counts"]
        size = ", ".join(f"{k} {v:,}" for k, v in c.items() if k not in ("texts", "approx_tokens"))
        lines.append(f"| {task['name']} | {task['category']} | {task['source']} | {size} | {c['texts']:,} | "
                     f"{c['approx_tokens']:,} | {task['main_score']} | {task['instruction']} |")
    lines += ["", "Task descriptions:", ""]
    lines += [f"- **{t['name']}**: {t['description']}" for t in summary["tasks"]]
    return lines


def render(summary: dict[str, Any], previous: str | None = None) -> str:
    """The whole card; `previous` is the card being replaced, whose Baselines section is kept."""
    deps = ", ".join(f"{k} {v}" for k, v in summary["builder_dependencies"].items())
    parts = [
        "# Data card: poolattn training triples and offline evaluation suite",
        "",
        "Generated by `poolattn data build` (builder version "
        f"{summary['builder_version']}); edit the builder, not this file, except the Baselines section.",
        "Everything here comes from packages that pip or apt can download; no hub, no network at run time.",
        "The package reads the artifacts with the standard library only (gzip + json).",
        "",
        "## How to rebuild",
        "",
        "```",
        "pip install -e '.[build-data]'      # builder-only dependency: pysword (versification tables)",
        "poolattn data build                 # writes src/poolattn/resources/{train,suite}, this card",
        "poolattn data build --check         # rebuild into a temp folder, list artifacts that differ",
        "```",
        "",
        "Downloads are cached in `$POOLATTN_CACHE/databuild` (default `~/.cache/poolattn/databuild`). Wheels",
        "come from `pip download --no-deps NAME==VERSION`, Debian packages from `apt-get download` against a",
        "private list folder for bookworm main (the system's apt state is untouched), unpacked with",
        "`dpkg-deb -x`. apt keeps its indexes lz4-compressed; they are read with `apt-helper cat-file`",
        "(part of apt), so no lz4 binding is needed. Versions are pinned in the source modules; if Debian",
        f"drops a pinned version the current one is used and recorded below. Builder dependencies: {deps}.",
        "Debian's Packages and Translation-en indexes change with point releases: the cached lists keep",
        "rebuilds stable on one machine, while a fresh machine after a point release gets new indexes, and",
        "`--check` then reports the Debian-derived files (the input sha256s below show what moved).",
        "",
        "## Sources",
        "",
        *_sources_table(summary),
        "",
        "## Counts before and after filtering",
        "",
        *_counts(summary),
        _METHOD,
        "## Training set",
        "",
        *_training(summary),
        "",
        "Instructions (one per source, E5 style):",
        "",
    ]
    parts += [f"- {source}: {text}" for source, text in summary["training"]["instructions"].items()]
    parts += [
        "",
        "## Evaluation suite",
        "",
        "`suite/manifest.json` lists the tasks; each `suite/<TaskName>.json.gz` holds one task's payload.",
        "Budget per task: at most 1,500 encoded texts and about 60,000 tokens (characters / 4; checked against",
        "the SmolLM2 tokenizer: within about 15%, SMS messages about 40% more, every task under 60,000).",
        "Retrieval and reranking candidates include hard distractors (same section or category, sibling",
        "senses, neighbouring and similarly worded verses) so that scores do not saturate.",
        "",
        *_tasks(summary),
        "",
        _baselines(previous),
    ]
    return "\n".join(parts)
