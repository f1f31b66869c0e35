"""Prompt words for per-view prompts: from the WebUI's token positions to words, and back to prompt text.

The WebUI turns a prompt line into conditioning like this (A1111 and Forge alike): its attention parser
splits the line into (text, weight) segments (emphasis resolved, escapes removed, BREAK = ("BREAK", -1));
each segment's text is tokenized alone, without BOS/EOS; the tokens are packed into chunks of 75
(moving the text after a late comma into the next chunk), each framed as BOS + 75 + EOS and EOS-padded.

This module is given the host's segments and a `tokenize(text) -> ids` callable, so it never imports
the host. It splits each segment into words (CLIP pre-tokens: a letter run, one digit, a run of other
non-space characters, or an apostrophe suffix such as 's), keeps their original spelling, and gives
each its ids and its range in the flattened token list (all segments' ids in order; BREAK adds none).
`chunk_content` maps the host's chunks to the context positions of those flattened tokens.
`render` writes the prompt text of a kept subset of words in WebUI syntax; the host tokenizes it again
and compares with `kept_token_weights` through `round_trip_ok`: any difference means "use the full
prompt for this view".
"""
from __future__ import annotations

import decimal
import math
import re
from dataclasses import dataclass
from typing import Callable, Collection, Iterable, Optional, Sequence

# CLIP's pre-token rule, after it lower-cases: 's 't 're 've 'm 'll 'd | letters+ | one digit | other non-space+.
# Python's `re` has no \p{L}/\p{N}: letters are word characters that are neither decimal digits nor "_".
# Where this differs from the real tokenizer (rare digits, ftfy or HTML fixes, case folding that changes
# length), the per-segment check in `prompt_words` catches it.
_WORD = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|(?:[^\s\w]|_)+", re.IGNORECASE)
_SPECIAL = re.compile(r"([()\[\]\\])")  # read by the WebUI's attention parser unless escaped


@dataclass(frozen=True)
class Word:
    """One word of the prompt: `tokens` are its ids, tokens[start:stop] of the flattened token list.

    `text` is its original spelling. `glued` says it directly followed the previous word of its segment
    (no whitespace between, e.g. the "'s" of "cat's" or the "-" of "dragon-shaped"); `render` then keeps
    the two together when both are kept. `unit` marks a segment that could not be split into words and
    is one word as a whole (`text` is the segment's text, stripped).
    """
    segment: int
    text: str
    tokens: tuple[int, ...]
    start: int
    stop: int
    glued: bool = False
    unit: bool = False


def is_break(segment: Sequence) -> bool:
    """The WebUI's test for BREAK: the text "BREAK" with weight -1 (a BREAK inside brackets is plain text)."""
    return segment[0] == "BREAK" and segment[1] == -1


def prompt_words(segments: Sequence[Sequence], tokenize: Callable[[str], Iterable[int]]) -> Optional[list[Word]]:
    """The words of a parsed prompt line, numbered in order across segments.

    segments: the host's attention-parser output, [(text, weight), ...]; with emphasis "None" the host
    passes [(line, 1.0)]. tokenize: the host's tokenizer of one text, without BOS/EOS.
    Each word is tokenized alone; if a segment's words' ids do not concatenate to the segment's own ids,
    that segment is one word (`unit`). Words with no ids are left out (they do not change the ids).
    Returns None only if `tokenize` fails on a whole segment's text: nothing can be mapped then, and the
    host uses the full prompt. A failure on a single word only makes its segment one unit.
    """
    words: list[Word] = []
    flat = 0
    for index, segment in enumerate(segments):
        if is_break(segment):
            continue
        text = str(segment[0])
        try:
            ids = tuple(int(t) for t in tokenize(text))
        except Exception:
            return None
        if not ids:
            continue
        split = _split(text, tokenize)
        if split is not None and tuple(t for _, word_ids, _ in split for t in word_ids) == ids:
            for word_text, word_ids, glued in split:
                words.append(Word(index, word_text, word_ids, flat, flat + len(word_ids), glued))
                flat += len(word_ids)
        else:
            words.append(Word(index, text.strip(), ids, flat, flat + len(ids), unit=True))
            flat += len(ids)
    return words


def _split(text: str, tokenize) -> Optional[list[tuple[str, tuple[int, ...], bool]]]:
    """(spelling, ids, glued to the previous kept word) of each pre-token with ids; None if tokenize fails."""
    out, end = [], None
    for match in _WORD.finditer(text):
        try:
            ids = tuple(int(t) for t in tokenize(match.group()))
        except Exception:
            return None
        if ids:
            out.append((match.group(), ids, bool(out) and match.start() == end))
            end = match.end()
    return out


def flat_ids(words: Sequence[Word]) -> list[int]:
    """All words' ids in order: what the host's chunk content ids must equal for the words to be usable
    (they differ e.g. where a textual-inversion embedding put its placeholder ids)."""
    return [t for w in words for t in w.tokens]


def chunk_content(chunks: Sequence[Sequence[int]], bos: int, eos: int,
                  pad: Optional[int] = None) -> tuple[list[int], list[int]]:
    """(context positions, ids) of every content token of the host's chunks, in order.

    Each chunk is the full framed list (BOS, up to 75 content ids, EOS, EOS padding); chunks are encoded
    apart and concatenated, so slot s of chunk c is context position c * len(chunk) + s. A chunk's content
    is slots 1.. up to its trailing run of EOS (a comma backtrack may end it early). If the host's list
    is padded with another id after the EOS (`pad`), that trailing run goes first.
    Raises ValueError for chunks not framed like that; the host then uses the full prompt.
    """
    positions: list[int] = []
    ids: list[int] = []
    width = None
    for c, chunk in enumerate(chunks):
        chunk = [int(t) for t in chunk]
        if width is None:
            width = len(chunk)
        if len(chunk) != width or width < 2 or chunk[0] != bos:
            raise ValueError(f"chunk {c} is not BOS-framed with the width of chunk 0 ({width})")
        stop = len(chunk)
        if pad is not None and pad != eos:
            while stop > 1 and chunk[stop - 1] == pad:
                stop -= 1
        if chunk[stop - 1] != eos:
            raise ValueError(f"chunk {c} has no closing EOS")
        while stop > 1 and chunk[stop - 1] == eos:
            stop -= 1
        positions += [c * width + s for s in range(1, stop)]
        ids += chunk[1:stop]
    return positions, ids


def weight_text(weight: float) -> str:
    """A weight as the WebUI's parser reads it back to the same float: repr digits, never an exponent
    (the parser takes [+-]?[.0-9]+ only). Non-finite weights cannot be written; the round trip then fails."""
    weight = float(weight)
    text = repr(weight)
    if "e" in text and math.isfinite(weight):
        text = format(decimal.Decimal(text), "f")
    return text


def render(segments: Sequence[Sequence], words: Sequence[Word], kept: Collection[int], emphasis: bool = True) -> str:
    """The prompt text of the kept words (indices into `words`), in WebUI syntax.

    Segment by segment: the kept words of a segment, separated by one space (two words that were glued
    in the original and are both kept stay glued); a segment with weight != 1 becomes "(text:weight)"
    with `weight_text`; the characters ( ) [ ] \\ are escaped so that the parser reads them literally.
    Segments with no kept word vanish; every BREAK stays. With emphasis off (the WebUI's "None" mode,
    where the host passes the whole line as one segment) the words are written raw. Keeping all words
    gives a text that tokenizes to the original ids and weights, not necessarily the same characters.
    """
    pieces: list[str] = []
    by_segment: dict[int, list[str]] = {}
    previous_kept = False
    for index, word in enumerate(words):
        if index not in kept:
            previous_kept = False
            continue
        text = _SPECIAL.sub(r"\\\1", word.text) if emphasis else word.text
        parts = by_segment.setdefault(word.segment, [])
        if parts and word.glued and previous_kept:
            parts[-1] += text
        else:
            parts.append(text)
        previous_kept = True
    for index, segment in enumerate(segments):
        if is_break(segment):
            pieces.append("BREAK")
            continue
        parts = by_segment.get(index)
        if not parts:
            continue
        body = " ".join(parts)
        weight = float(segment[1])
        pieces.append(body if weight == 1 or not emphasis else f"({body}:{weight_text(weight)})")
    return " ".join(pieces)


def kept_token_weights(segments: Sequence[Sequence], words: Sequence[Word],
                       kept: Collection[int]) -> tuple[list[int], list[float]]:
    """The flattened ids and multipliers that the host's tokenization of `render(...)` must reproduce:
    the kept words' ids, each with its segment's weight."""
    ids: list[int] = []
    weights: list[float] = []
    for index, word in enumerate(words):
        if index in kept:
            ids += word.tokens
            weights += [float(segments[word.segment][1])] * len(word.tokens)
    return ids, weights


def round_trip_ok(expected_ids: Sequence[int], expected_weights: Sequence[float],
                  got_ids: Sequence[int], got_weights: Sequence[float], rel_tol: float = 0.0) -> bool:
    """Whether the host's tokenization of a rendered view prompt (content ids and multipliers, e.g. from
    `chunk_content` over its chunks) equals `kept_token_weights`. False means: use the full prompt for
    this view (the text could not be written so that the WebUI reads back exactly the kept words)."""
    if len(expected_ids) != len(got_ids) or len(expected_weights) != len(got_weights):
        return False
    if len(expected_ids) != len(expected_weights):
        return False
    if any(int(a) != int(b) for a, b in zip(expected_ids, got_ids)):
        return False
    return all(float(a) == float(b) or math.isclose(float(a), float(b), rel_tol=rel_tol, abs_tol=0.0)
               for a, b in zip(expected_weights, got_weights))
