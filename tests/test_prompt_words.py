"""Prompt words for per-view prompts: words from the WebUI's segments and tokens, chunk positions, and
view prompt texts that the WebUI reads back as exactly the kept words.

No transformers here: `ToyClip` stands in for CLIP's tokenizer and `parse` for the WebUI's attention
parser (both written for these tests, in toy_clip.py; see their docstrings). Where a test starts from segments, they
are written out as the WebUI's parser gives them, with the prompt line they come from beside them.
"""
import re

import pytest

from demofusion_ext.anti_repetition.prompt_words import (
    Word, chunk_content, flat_ids, is_break, kept_token_weights, prompt_words, render,
    round_trip_ok, weight_text,
)
from toy_clip import BOS, BREAK, EOS, ToyClip, chunk_line, host_read, parse


def everything(words):
    return set(range(len(words)))


def texts(words):
    return [w.text for w in words]


def test_the_test_parser_gives_what_the_webui_parser_gives_for_the_syntax_used_here():
    assert parse("a (cat:1.3) on a ((mat)), [dog]") == [
        ["a ", 1.0], ["cat", 1.3], [" on a ", 1.0], ["mat", 1.2100000000000002], [", ", 1.0],
        ["dog", 0.9090909090909091]]
    assert parse(r"a \(cat\) \[x\] \\ y") == [["a (cat) [x] \\ y", 1.0]]
    assert parse("a BREAK b") == [["a", 1.0], ["BREAK", -1.0], ["b", 1.0]]
    assert parse("(a BREAK b:1.2)") == [["a", 1.2], ["BREAK", -1.2], ["b", 1.2]]
    assert parse("x:2) (f") == [["x:2) ", 1.0], ["f", 1.1]]


def test_a_plain_prompt_is_one_word_per_pre_token_with_contiguous_flattened_ranges():
    tok = ToyClip()
    segments = [("A photo of a Cat", 1.0)]
    words = prompt_words(segments, tok)
    assert texts(words) == ["A", "photo", "of", "a", "Cat"]  # the original spelling, for re-emission
    assert [w.segment for w in words] == [0] * 5
    assert [(w.start, w.stop) for w in words] == [(i, i + 1) for i in range(5)]
    assert flat_ids(words) == tok("A photo of a Cat")
    assert not any(w.unit for w in words)


def test_multi_piece_words_are_one_word_and_are_kept_or_dropped_whole():
    tok = ToyClip()
    segments = [("photorealistic dragonfly-shaped kite", 1.0)]
    words = prompt_words(segments, tok)
    assert texts(words) == ["photorealistic", "dragonfly", "-", "shaped", "kite"]
    assert [len(w.tokens) for w in words] == [3, 2, 1, 1, 1]
    assert [(w.start, w.stop) for w in words] == [(0, 3), (3, 5), (5, 6), (6, 7), (7, 8)]
    assert [w.glued for w in words] == [False, False, True, True, False]
    kept = {1, 2, 3, 4}
    text = render(segments, words, kept)
    assert text == "dragonfly-shaped kite"
    ids, _ = kept_token_weights(segments, words, kept)
    assert ids == flat_ids(words)[3:] == tok(text)
    # a dropped word between glued ones leaves a space: the two are separate words again
    assert render(segments, words, {0, 1, 3}) == "photorealistic dragonfly shaped"


def test_punctuation_digits_and_apostrophe_suffixes_are_words():
    tok = ToyClip()
    segments = [("sky, 8k, masterpiece!! it's the CAT'S", 1.0)]
    words = prompt_words(segments, tok)
    assert texts(words) == ["sky", ",", "8", "k", ",", "masterpiece", "!!", "it", "'s", "the", "CAT", "'S"]
    assert texts(prompt_words([("16:9_ratio", 1.0)], tok)) == ["1", "6", ":", "9", "_", "ratio"]
    no_commas = everything(words) - {1, 4}
    text = render(segments, words, no_commas)
    assert text == "sky 8k masterpiece!! it's the CAT'S"
    assert round_trip_ok(*kept_token_weights(segments, words, no_commas), *host_read(text, tok))
    assert render(segments, words, {0, 2, 8, 11}) == "sky 8 's 'S"
    assert tok("sky 8 's 'S") == [w.tokens[0] for w in (words[0], words[2], words[8], words[11])]


def test_emphasis_is_written_so_the_parser_gives_back_the_same_weights():
    tok = ToyClip()
    line = "a (cat:1.3) on a ((mat)), [dog]"
    segments = parse(line)  # what the WebUI gives: ((mat)) is 1.1 * 1.1 = 1.2100000000000002
    words = prompt_words(segments, tok)
    text = render(segments, words, everything(words))
    assert text == "a (cat:1.3) on a (mat:1.2100000000000002) , (dog:0.9090909090909091)"
    assert [w for _, w in parse(text) if w != 1.0] == [1.3, 1.2100000000000002, 0.9090909090909091]
    assert host_read(text, tok) == host_read(line, tok)
    assert texts(words) == ["a", "cat", "on", "a", "mat", ",", "dog"]
    for kept in ({1, 4}, {0, 1, 2}, {4}, {5}, {1, 6}):
        text = render(segments, words, kept)
        assert round_trip_ok(*kept_token_weights(segments, words, kept), *host_read(text, tok)), text
    assert render(segments, words, {1, 6}) == "(cat:1.3) (dog:0.9090909090909091)"
    assert kept_token_weights(segments, words, {1, 6}) == (list(words[1].tokens + words[6].tokens), [1.3, 1 / 1.1])


def test_weights_are_written_without_exponents_and_read_back_exactly():
    for weight in (1.3, 1.1 * 1.1, 1 / 1.1, 1.1 ** -120, 1e-5, 2.5e17, -0.5, 0.0):
        text = weight_text(weight)
        assert re.fullmatch(r"[+-]?[.\d]+", text), text
        assert float(text) == weight
        assert parse(f"(x:{text})") == [["x", weight]]


def test_brackets_and_backslashes_in_words_are_escaped_and_read_literally():
    tok = ToyClip()
    line = r"a \(cat\) and \[dog\] \\ slash (\(sad\):1.2)"
    segments = parse(line)
    assert segments == [["a (cat) and [dog] \\ slash ", 1.0], ["(sad)", 1.2]]
    words = prompt_words(segments, tok)
    assert texts(words) == ["a", "(", "cat", ")", "and", "[", "dog", "]", "\\", "slash", "(", "sad", ")"]
    text = render(segments, words, everything(words))
    assert text == r"a \(cat\) and \[dog\] \\ slash (\(sad\):1.2)"
    assert parse(text) == segments
    kept = {0, 1, 2, 8, 10, 11}
    text = render(segments, words, kept)
    assert text == r"a \(cat \\ (\(sad:1.2)"
    assert round_trip_ok(*kept_token_weights(segments, words, kept), *host_read(text, tok))


def test_every_break_is_kept_even_when_all_words_around_it_are_dropped():
    tok = ToyClip()
    line = "a cat BREAK (sky:1.2) BREAK BREAK tree"
    segments = parse(line)
    assert [tuple(s) for s in segments] == [
        ("a cat", 1.0), BREAK, ("", 1.0), ("sky", 1.2), ("", 1.0), BREAK, ("", 1.0), BREAK, ("tree", 1.0)]
    words = prompt_words(segments, tok)
    assert [(w.text, w.segment) for w in words] == [("a", 0), ("cat", 0), ("sky", 3), ("tree", 8)]
    assert render(segments, words, set()) == "BREAK BREAK BREAK"
    assert render(segments, words, {3}) == "BREAK BREAK BREAK tree"
    assert render(segments, words, {1, 3}) == "cat BREAK BREAK BREAK tree"
    for kept in (set(), {3}, {2}, {0, 3}):
        text = render(segments, words, kept)
        assert sum(is_break(s) for s in parse(text)) == 3, text
        assert round_trip_ok(*kept_token_weights(segments, words, kept), *host_read(text, tok))


def test_keeping_all_words_gives_a_text_the_webui_reads_as_the_original_ids_and_weights():
    tok = ToyClip()
    for line in ("a photo of a cat", "photorealistic, (dragonfly-shaped:1.4) kite BREAK [[sky]], 8k",
                 r"it's (\(hyperdetailed\)) x:2) f(g", "((cat:1.2):1.1) café naïve 16:9 a_b",
                 "(x:1.2 y:1.3) (a:0.00001) unclosed (f"):
        segments = parse(line)
        words = prompt_words(segments, tok)
        text = render(segments, words, everything(words))
        assert host_read(text, tok) == host_read(line, tok), (line, text)
        assert kept_token_weights(segments, words, everything(words)) == host_read(line, tok)


def test_keeping_no_word_gives_an_empty_text():
    tok = ToyClip()
    segments = parse("a (cat:1.3), [dog]")
    words = prompt_words(segments, tok)
    assert render(segments, words, set()) == ""
    assert kept_token_weights(segments, words, set()) == ([], [])
    assert render(segments, words, frozenset()) == ""


def test_a_segment_whose_words_do_not_tokenize_like_the_whole_becomes_one_unit():
    tok = ToyClip()  # unescapes HTML over the whole text, as CLIP does: "&amp;" is "&", but "amp" alone is a word
    segments = [("a cat", 1.0), ("salt &amp; pepper ", 1.2), ("dog", 1.0)]
    words = prompt_words(segments, tok)
    assert [(w.text, w.segment, w.unit) for w in words] == [
        ("a", 0, False), ("cat", 0, False), ("salt &amp; pepper", 1, True), ("dog", 2, False)]
    assert words[2].tokens == tuple(tok("salt &amp; pepper")) and len(words[2].tokens) == 3
    assert (words[2].start, words[2].stop) == (2, 5)
    assert flat_ids(words) == tok("a cat") + tok("salt &amp; pepper") + tok("dog")
    text = render(segments, words, {2, 3})
    assert text == "(salt &amp; pepper:1.2) dog"
    assert round_trip_ok(*kept_token_weights(segments, words, {2, 3}), *host_read(text, tok))


def test_prompt_words_gives_none_only_when_the_tokenizer_fails_on_a_whole_segment():
    tok = ToyClip()

    def fails_on_words(text):
        if text == "cat":
            raise ValueError("no")
        return tok(text)

    words = prompt_words([("a cat", 1.0), ("dog", 1.0)], fails_on_words)
    assert [(w.text, w.unit) for w in words] == [("a cat", True), ("dog", False)]

    def fails_on_segments(text):
        if " " in text:
            raise ValueError("no")
        return tok(text)

    assert prompt_words([("dog", 1.0), ("a cat", 1.0)], fails_on_segments) is None
    assert prompt_words([("", 1.0)], tok) == []
    # a segment that tokenizes to nothing has no word, whatever its pieces would give alone
    assert prompt_words([("x y", 1.0)], lambda text: [] if text == "x y" else tok(text)) == []
    assert prompt_words([("  ", 1.0), BREAK, ("x", 1.0)], tok) == [Word(2, "x", tuple(tok("x")), 0, 1)]


def test_content_positions_skip_bos_eos_and_padding_of_a_comma_backtracked_chunk():
    first = list(range(1, 71))          # 70 content ids: the comma backtrack moved the rest on
    second = list(range(100, 110))
    chunks = [[BOS] + first + [EOS] * 6, [BOS] + second + [EOS] * 66]
    assert all(len(c) == 77 for c in chunks)
    positions, ids = chunk_content(chunks, BOS, EOS)
    assert positions == list(range(1, 71)) + list(range(78, 88))
    assert ids == first + second
    assert [chunks[p // 77][p % 77] for p in positions] == ids
    # a full chunk: 75 content ids, then the closing EOS; an empty chunk (from BREAK): nothing
    full = [BOS] + list(range(1, 76)) + [EOS]
    assert chunk_content([full, [BOS] + [EOS] * 76], BOS, EOS)[0] == list(range(1, 76))
    # padded with another id after the EOS (OpenCLIP's pad 0, which is also the id of "!")
    padded = [BOS, 0, 5, 0, EOS] + [0] * 72
    assert chunk_content([padded], BOS, EOS, pad=0) == ([1, 2, 3], [0, 5, 0])
    with pytest.raises(ValueError):
        chunk_content([[7] + first + [EOS] * 6], BOS, EOS)
    with pytest.raises(ValueError):
        chunk_content([chunks[0], chunks[1][:50]], BOS, EOS)


def test_word_positions_through_the_webuis_chunking_with_comma_backtrack_and_break():
    tok = ToyClip()
    comma = tok(",")[0]
    line = "a b " + ", ".join(f"item{chr(97 + i % 26)}{i} detail" for i in range(30)) + " BREAK (last words:1.2)"
    segments = parse(line)
    words = prompt_words(segments, tok)
    chunks, multipliers = chunk_line(segments, tok, comma)
    assert len(chunks) == 3 and chunks[0][72] == comma and chunks[0][73] == EOS   # backtracked after a comma
    positions, ids = chunk_content(chunks, BOS, EOS)
    assert ids == flat_ids(words)
    for w in words:
        assert [chunks[p // 77][p % 77] for p in positions[w.start:w.stop]] == list(w.tokens)
    last = positions[words[-1].start]
    assert last // 77 == 2 and multipliers[2][last % 77] == 1.2
    got_weights = [multipliers[p // 77][p % 77] for p in positions]
    assert round_trip_ok(*kept_token_weights(segments, words, everything(words)), ids, got_weights)


def test_a_text_the_webui_cannot_read_back_fails_the_round_trip():
    tok = ToyClip()
    segments = parse("(a BREAK b:1.2)")  # a BREAK inside brackets is the plain word BREAK, weight -1.2
    words = prompt_words(segments, tok)
    assert texts(words) == ["a", "BREAK", "b"]
    kept = everything(words)
    text = render(segments, words, kept)
    assert not round_trip_ok(*kept_token_weights(segments, words, kept), *host_read(text, tok))
    ids, weights = kept_token_weights(segments, words, kept)
    assert round_trip_ok(ids, weights, ids, weights)
    assert not round_trip_ok(ids, weights, ids[:-1], weights[:-1])
    assert not round_trip_ok(ids, weights, ids, weights[:-1] + [weights[-1] + 1e-9])
    assert round_trip_ok(ids, weights, ids, weights[:-1] + [weights[-1] + 1e-9], rel_tol=1e-6)


def test_with_emphasis_off_the_line_is_one_segment_and_words_are_written_raw():
    tok = ToyClip()
    line = r"a (cat:1.3) \(x\) BREAK [dog]"
    segments = [(line, 1.0)]  # the WebUI's emphasis "None": no parsing, brackets and BREAK are text
    words = prompt_words(segments, tok)
    assert texts(words) == ["a", "(", "cat", ":", "1", ".", "3", ")", "\\(", "x", "\\)", "BREAK", "[", "dog", "]"]
    text = render(segments, words, everything(words), emphasis=False)
    assert text == r"a (cat:1.3) \(x\) BREAK [dog]"
    assert tok(text) == tok(line)
    assert render(segments, words, {2, 11, 13}, emphasis=False) == "cat BREAK dog"
