"""Each source parser on a few lines of its real format, written inline (no download)."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import pytest

from poolattn.databuild.sources import (
    bible,
    debian,
    dictd,
    foldoc,
    newsgroups,
    rotten_tomatoes,
    sms_spam,
    trec,
    word_similarity,
    wordnet,
)

# ---- Debian -------------------------------------------------------------------------------------------
TRANSLATION = """\
Package: 0ad
Description-md5: d943033bedada21853d2ae54a2578a7b
Description-en: Real-time strategy game of ancient warfare
 0 A.D. (pronounced "zero ey-dee") is a free, open-source, cross-platform
 real-time strategy (RTS) game of ancient warfare.
 .
 It is a historically-based war/economy game.

Package: 0ad-data
Description-md5: 26581e685027d5ae84824362a4ba59ee
Description-en: Real-time strategy game of ancient warfare (data files)
 0 A.D. (pronounced "zero ey-dee") is a free, open-source, cross-platform
 real-time strategy (RTS) game of ancient warfare.
 .
 This package contains the main data files required by 0 A.D.

Package: libfoo-dbg
Description-md5: 11111111111111111111111111111111
Description-en: debugging symbols for libfoo
 This package contains the debugging symbols for libfoo, a library that
 does many useful things for everyone.

Package: oldthing
Description-md5: 22222222222222222222222222222222
Description-en: transitional package
 This is a transitional package. It can safely be removed once the new
 package is installed on the system.

Package: zsh
Description-md5: 33333333333333333333333333333333
Description-en: shell with lots of features
 Zsh is a UNIX command interpreter (shell) usable as an interactive login
 shell and as a shell script command processor.

Package: notinpackages
Description-md5: 44444444444444444444444444444444
Description-en: a package for another architecture only
 It has a description long enough to pass every length filter in the builder.
"""

PACKAGES = """\
Package: 0ad
Version: 0.0.26-3
Description: Real-time strategy game of ancient warfare
Description-md5: d943033bedada21853d2ae54a2578a7b
Section: games

Package: 0ad-data
Source: 0ad
Version: 0.0.26-1
Description-md5: 26581e685027d5ae84824362a4ba59ee
Section: games

Package: libfoo-dbg
Source: libfoo (1.0-1)
Description-md5: 11111111111111111111111111111111
Section: debug

Package: oldthing
Description-md5: 22222222222222222222222222222222
Section: oldlibs

Package: zsh
Description-md5: 33333333333333333333333333333333
Section: shells
"""


def test_debian_split_description_joins_paragraphs():
    synopsis, long = debian.split_description("Short line\n first part\n second part\n .\n next paragraph")
    assert synopsis == "Short line"
    assert long == "first part second part next paragraph"


def test_debian_parse_control_keeps_continuations():
    paras = list(debian.parse_control(PACKAGES))
    assert [p["Package"] for p in paras] == ["0ad", "0ad-data", "libfoo-dbg", "oldthing", "zsh"]
    assert paras[2]["Source"] == "libfoo (1.0-1)"


def test_debian_select_filters_boilerplate_families_and_unknown_packages():
    items, stats = debian.select(TRANSLATION, PACKAGES)
    assert [p.name for p in items] == ["0ad", "zsh"]  # 0ad-data: same source as 0ad; -dbg, transitional dropped
    assert items[0].section == "games" and items[1].section == "shells"
    assert items[1].description.startswith("Zsh is a UNIX command interpreter")
    assert stats["descriptions in Translation-en"] == 6
    assert stats["joined with an amd64 Packages entry (section known)"] == 5


def test_debian_boilerplate_rule():
    assert debian.is_boilerplate("libx-dbgsym", "debug", "symbols")
    assert debian.is_boilerplate("x", "oldlibs", "anything")
    assert debian.is_boilerplate("x", "misc", "Dummy package for y")
    assert not debian.is_boilerplate("zsh", "shells", "shell with lots of features")


# ---- WordNet ------------------------------------------------------------------------------------------
WN_NOUN = (
    "  1 This software and database is being provided to you, the LICENSEE, by  \n"
    "00976953 04 n 03 foray 0 raid 0 maraud 0 006 @ 00975452 n 0000 + 02020255 v 0301 + 02494850 v 0201 "
    "+ 01228653 v 0101 ~ 00974111 n 0000 ~ 00977214 n 0000 | a sudden short attack  \n"
    "00977301 04 n 01 strike 2 005 @ 00972621 n 0000 + 01123905 v 0101 ~ 00977551 n 0000 ~ 00977857 n 0000 "
    "~ 00978005 n 0000 | an attack that is intended to seize or inflict damage on or destroy an objective; "
    '"the strike was scheduled to begin at dawn"  \n'
)
WN_ADJ_SATELLITE = (
    "00530772 00 s 03 cool 0 coolheaded 0 nerveless 0 003 & 00529266 a 0000 + 04858632 n 0302 "
    "+ 04858632 n 0101 | marked by calm self-control (especially in trying circumstances); unemotional; "
    '"play it cool"  '
)


def test_wordnet_parse_noun_lines_skip_license_header():
    synsets = wordnet.parse_data(WN_NOUN)
    assert [s.id for s in synsets] == ["n:00976953", "n:00977301"]
    foray = synsets[0]
    assert foray.lemmas == ("foray", "raid", "maraud")
    assert foray.lexname == "noun.act"
    assert foray.parents == ("n:00975452",)  # only the hypernym (@), not hyponyms (~) or derivations (+)
    assert foray.definition == "a sudden short attack"
    assert synsets[1].definition == "an attack that is intended to seize or inflict damage on or destroy an objective"


def test_wordnet_satellite_parent_is_head_adjective():
    s = wordnet.parse_data_line(WN_ADJ_SATELLITE)
    assert s is not None and s.id == "a:00530772" and s.parents == ("a:00529266",)
    assert s.definition == "marked by calm self-control (especially in trying circumstances); unemotional"
    assert s.query == "cool, coolheaded, nerveless"


def test_wordnet_lexnames_table_has_45_entries():
    assert len(wordnet.LEXNAMES) == 45 and wordnet.LEXNAMES[4] == "noun.act" and wordnet.LEXNAMES[44] == "adj.ppl"


# ---- Bible --------------------------------------------------------------------------------------------
WEB_GEN_1_1 = (
    '<w lemma="strong:H0430">In</w> <w lemma="strong:H0853">the</w> <w lemma="strong:H7225">beginning</w>, '
    '<w lemma="strong:H0430">God</w><note placement="foot"><reference type="annotateRef">1:1 </reference>The Hebrew '
    'word rendered “God” is “אֱלֹהִ֑ים” (Elohim).</note><w lemma="strong:H1254">created</w> '
    '<w lemma="strong:H0853">the</w> <w lemma="strong:H8064">heavens</w> and the earth. '
)
WEB_JOHN_3_16 = (
    '<q marker="" who="Jesus"><w lemma="strong:G1063">For</w> God so loved the world, that he gave his only born</q>'
    '<note placement="foot"><reference type="annotateRef">3:16 </reference>The phrase “only born”.</note>'
    '<q marker="" who="Jesus"><w lemma="strong:G5207">Son</w>, that whoever believes in him should not perish.</q>'
)
KJV_PS_3_1 = (
    '<title canonical="true" type="psalm">A Psalm of David.</title> ¶ <w lemma="strong:H3068">LORD</w>, how are they '
    "increased that trouble me!"
)


def test_bible_markup_removal_keeps_words_apart():
    assert bible.osis_to_text(WEB_GEN_1_1) == "In the beginning, God created the heavens and the earth."
    assert bible.osis_to_text(WEB_JOHN_3_16) == (
        "For God so loved the world, that he gave his only born Son, that whoever believes in him should not perish.")
    # the naive stripping this replaces glues the words: the bug the builder repairs
    assert "Godcreated" in bible.naive_text(WEB_GEN_1_1)


def test_bible_titles_and_pilcrows_are_dropped():
    assert bible.osis_to_text(KJV_PS_3_1) == "LORD, how are they increased that trouble me!"


def test_bible_verse_table_matches_pysword_indices():
    from pysword.books import BibleStructure

    ours = bible.verse_table("kjv")
    theirs = BibleStructure("kjv")
    for book, chapter, verse in [("Gen", 1, 1), ("Gen", 2, 3), ("Exod", 1, 1), ("Mal", 4, 6), ("Rev", 22, 21)]:
        found = theirs.ref_to_indicies(books=[book], chapters=[chapter], verses=[verse])
        testament, expected = next(iter(found.items()))
        assert ours[testament][(book, chapter, verse)] == expected[0]


def _write_ztext(folder: Path, testament: str, blocks: list[list[str]]) -> None:
    """A minimal zText module: each block a list of entries, compressed with zlib."""
    bzs, bzv, bzz = b"", b"", b""
    for number, entries in enumerate(blocks):
        raw = b""
        for entry in entries:
            data = entry.encode("utf-8")
            bzv += struct.pack("<IIH", number, len(raw), len(data))
            raw += data
        packed = zlib.compress(raw)
        bzs += struct.pack("<III", len(bzz), len(packed), len(raw))
        bzz += packed
    for ext, data in (("bzs", bzs), ("bzv", bzv), ("bzz", bzz)):
        (folder / f"{testament}.{ext}").write_bytes(data)


def test_ztext_reader_reads_entries_across_blocks(tmp_path):
    _write_ztext(tmp_path, "nt", [["", "", "heading", "Verse one."], ["Verse two.", "Verse three."]])
    assert bible.ZText(tmp_path).entries("nt") == ["", "", "heading", "Verse one.", "Verse two.", "Verse three."]
    assert bible.ZText(tmp_path).entries("ot") == []  # a missing testament is empty, not an error


def test_bible_pairing_skips_renumbered_chapters():
    kjv = {("3John", 1, 14): "But I trust I shall shortly see thee", ("Gen", 1, 1): "In the beginning God"}
    web = {("3John", 1, 14): "but I hope to see you soon", ("Gen", 1, 1): "In the beginning, God"}
    pairs = bible.pair_verses(kjv, web, same_chapters={("Gen", 1)})
    assert [p.ref for p in pairs] == ["Gen.1.1"]
    assert pairs[0].chapter == "Gen.1" and pairs[0].verse == 1


# ---- dictd / FOLDOC -----------------------------------------------------------------------------------
BRONTOBYTE = """brontobyte

   <unit, data> A proposed unit of {data} equal to 10^27 {bytes}.  A
   brontobyte is 1000^9 bytes or 1000 {yottabytes}.

   See {prefix (prefix.html)}.

   [Where did IBM get it from?]

   (2013-11-04)
"""


def test_dictd_numbers_are_base64_most_significant_first():
    assert dictd.decode_number("A") == 0
    assert dictd.decode_number("BA") == 64
    assert dictd.decode_number("G9yd") == ((6 * 64 + 61) * 64 + 50) * 64 + 29
    with pytest.raises(ValueError, match="bad character"):
        dictd.decode_number("A-")


def test_dictd_read_entries_groups_aliases(tmp_path):
    body = b"header text\nflame\n\n   <jargon> To rant.\n"
    start = body.index(b"flame")
    enc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    span = f"{enc[start]}\t{enc[len(body) - start]}"
    index = f"00-database-short\tA\tL\nflamage\t{span}\nflame\t{span}\n"
    (tmp_path / "x.index").write_text(index)
    (tmp_path / "x.dict.dz").write_bytes(gzip.compress(body))
    entries = dictd.read_entries(tmp_path / "x.index", tmp_path / "x.dict.dz")
    assert list(entries.values()) == [(["flamage", "flame"], "flame\n\n   <jargon> To rant.\n")]


def test_foldoc_entry_cleanup():
    headword, categories, text = foldoc.parse_entry(BRONTOBYTE)
    assert headword == "brontobyte"
    assert categories == ["unit", "data"]
    assert text == ("A proposed unit of data equal to 10^27 bytes. A brontobyte is 1000^9 bytes or 1000 yottabytes. "
                    "See prefix.")


def test_foldoc_select_drops_cross_reference_stubs():
    terms = [foldoc.Term("broker", "", "object request broker"),
             foldoc.Term("brouter", "networking", "A device which bridges some packets and routes other packets.")]
    kept, _ = foldoc.select(terms, 2)
    assert [t.headword for t in kept] == ["brouter"]


# ---- evaluation-only sources --------------------------------------------------------------------------
def test_newsgroups_tab_parser_skips_three_header_rows():
    text = ("Category\tText\nd\tstring\nclass\t\n"
            "alt.atheism\tre about the bible quiz answers in article\n"
            "sci.space\t  the moon   is far away\n")
    posts = newsgroups.parse_tab(text, "test")
    assert [(p.id, p.label, p.text) for p in posts] == [
        ("test:0", "alt.atheism", "re about the bible quiz answers in article"),
        ("test:1", "sci.space", "the moon is far away")]
    with pytest.raises(ValueError, match="unexpected .tab header"):
        newsgroups.parse_tab("Text\tCategory\n", "test")


def test_trec_line_parser():
    q = trec.parse_line("DESC:manner How did serfdom develop in and then leave Russia ?")
    assert q == trec.Question("How did serfdom develop in and then leave Russia?", "description", "manner")
    assert trec.parse_line("BOGUS:x what") is None


def test_sms_csv_parser():
    text = ',spam,text\n0,0,"Go until jurong point, crazy.."\n2,1,Free entry in 2 a wkly comp\n'
    assert sms_spam.parse_csv(text) == [sms_spam.Message("Go until jurong point, crazy..", "ham"),
                                        sms_spam.Message("Free entry in 2 a wkly comp", "spam")]


def test_rotten_tomatoes_parser_drops_plots():
    text = ('category,filename,text,movie_name\n'
            'plot,obj/Abandon.html,"A senior at an elite college.",abandon\n'
            'rotten,x,"A dark, dull thriller.",abandon\nfresh,y,Difficult to peg.,abyss\n')
    assert rotten_tomatoes.parse_csv(text) == [rotten_tomatoes.Review("A dark, dull thriller.", "rotten", "abandon"),
                                               rotten_tomatoes.Review("Difficult to peg.", "fresh", "abyss")]


def test_word_similarity_parser():
    text = ("# The SimLex-999 Test data\n# Word 1\tWord 2\tHuman (mean)\n"
            "old\tnew\t1.58\nsmart\tintelligent\t9.2\nold\tnew\t3\n")
    pairs = word_similarity.parse_pairs(text, "simlex999")
    assert [(p.word1, p.word2, p.score) for p in pairs] == [("old", "new", 1.58), ("smart", "intelligent", 9.2)]
    with pytest.raises(ValueError, match="outside"):
        word_similarity.parse_pairs("a\tb\t11\n", "simlex999")
