"""A stand-in for what the WebUI does to a prompt before CLIP sees it, for the prompt-word tests (no
transformers, no WebUI): `ToyClip` is CLIP's tokenizer in miniature, `parse` the WebUI's attention parser,
`host_read` what the WebUI reads back from a prompt line, `chunk_line` its packing into 75-token chunks."""
import html
import math
import re
import unicodedata

from demofusion_ext.anti_repetition.prompt_words import is_break

BOS, EOS = 49406, 49407
BREAK = ("BREAK", -1.0)


class ToyClip:
    """CLIP's tokenizer in miniature: the text is HTML-unescaped (CLIP's basic_clean does that), its
    whitespace cleaned and lower-cased, then cut into pre-tokens by CLIP's rule ('s 't 're 've 'm 'll 'd,
    a run of letters, one number character, a run of other non-space characters), scanned here by
    Unicode category. Each pre-token becomes 1-3 pieces (the last marked </w>), numbered as first seen."""

    SUFFIXES = ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d")

    def __init__(self):
        self.vocab = {}

    @staticmethod
    def kind(ch):
        if ch.isspace():
            return "space"
        return {"L": "letter", "N": "number"}.get(unicodedata.category(ch)[0], "other")

    def pre_tokens(self, text):
        i = 0
        while i < len(text):
            kind = self.kind(text[i])
            suffix = next((s for s in self.SUFFIXES if text.startswith(s, i)), None)
            if suffix:
                j = i + len(suffix)
            elif kind == "space":
                i += 1
                continue
            elif kind == "number":
                j = i + 1
            else:
                j = i + 1
                while j < len(text) and self.kind(text[j]) == kind:
                    j += 1
            yield text[i:j]
            i = j

    def __call__(self, text):
        text = " ".join(html.unescape(text).split()).lower()
        ids = []
        for pre in self.pre_tokens(text):
            size = max(6, math.ceil(len(pre) / 3))
            pieces = [pre[k:k + size] for k in range(0, len(pre), size)]
            pieces[-1] += "</w>"
            ids += [self.vocab.setdefault(p, len(self.vocab) + 1) for p in pieces]
        return ids


def parse(line):
    """The WebUI's parse_prompt_attention, restated for these tests: "(" and "[" open, ")" multiplies
    what followed the last "(" by 1.1, "(...:w)" by w, "]" by 1/1.1; unclosed brackets still count;
    \\( \\) \\[ \\] \\\\ are literal, a lone backslash vanishes; plain text splits at BREAK; then runs of
    equal weight merge. Gives [[text, weight], ...]."""
    out, rounds, squares = [], [], []
    weight_close = re.compile(r":\s*([+-]?[.\d]+)\s*\)")
    plain = re.compile(r"[^\\()\[\]:]+|[:)\]]")

    def scale(start, factor):
        for seg in out[start:]:
            seg[1] *= factor

    i = 0
    while i < len(line):
        c, weight = line[i], weight_close.match(line, i)
        if c == "\\":
            literal = line[i + 1:i + 2]
            literal = literal if literal and literal in "()[]\\" else ""
            out.append([literal, 1.0])
            i += 1 + len(literal)
        elif c in "([":
            (rounds if c == "(" else squares).append(len(out))
            i += 1
        elif weight and rounds:
            scale(rounds.pop(), float(weight.group(1)))
            i = weight.end()
        elif c == ")" and rounds:
            scale(rounds.pop(), 1.1)
            i += 1
        elif c == "]" and squares:
            scale(squares.pop(), 1 / 1.1)
            i += 1
        else:
            run = weight or plain.match(line, i)
            for k, part in enumerate(re.split(r"\s*\bBREAK\b\s*", run.group())):
                if k:
                    out.append(["BREAK", -1.0])
                out.append([part, 1.0])
            i = run.end()
    for start in rounds:
        scale(start, 1.1)
    for start in squares:
        scale(start, 1 / 1.1)
    out = out or [["", 1.0]]
    merged = [out[0]]
    for seg in out[1:]:
        if seg[1] == merged[-1][1]:
            merged[-1][0] += seg[0]
        else:
            merged.append(seg)
    return merged


def host_read(line, tokenize):
    """What the WebUI makes of a prompt line: flattened ids and multipliers (segments tokenized apart)."""
    ids, weights = [], []
    for text, weight in parse(line):
        if not is_break((text, weight)):
            tokens = tokenize(text)
            ids += tokens
            weights += [weight] * len(tokens)
    return ids, weights


def chunk_line(segments, tokenize, comma, backtrack=20):
    """The WebUI's packing into chunks: 75 ids each, framed BOS + 75 + EOS and EOS-padded; a full chunk
    with a comma among its last `backtrack` ids moves what follows the comma on; BREAK closes a chunk."""
    chunks, multipliers, cur, mult, last_comma = [], [], [], [], -1

    def close():
        nonlocal cur, mult, last_comma
        chunks.append([BOS] + cur + [EOS] * (76 - len(cur)))
        multipliers.append([1.0] + mult + [1.0] * (76 - len(mult)))
        cur, mult, last_comma = [], [], -1

    for text, weight in segments:
        if is_break((text, weight)):
            close()
            continue
        for token in tokenize(text):
            if token == comma:
                last_comma = len(cur)
            elif len(cur) == 75 and last_comma != -1 and len(cur) - last_comma <= backtrack:
                at = last_comma + 1
                moved, moved_mult = cur[at:], mult[at:]
                cur, mult = cur[:at], mult[:at]
                close()
                cur, mult = moved, moved_mult
            if len(cur) == 75:
                close()
            cur.append(token)
            mult.append(weight)
    if cur or not chunks:
        close()
    return chunks, multipliers
