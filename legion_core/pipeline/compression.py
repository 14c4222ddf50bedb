"""Prompt compression, levels 0-3. Deterministic: the same text always compresses the same way.

- 0: nothing.
- 1: whitespace: trailing spaces, runs of spaces/tabs, more than one blank line.
- 2: level 1 + filler and politeness phrases ("please", "could you", "basically", ...).
- 3: level 2 + articles and weak intensifiers, and repeated sentences.

Fenced (```) and inline (`) code is never touched, and neither are negations (not, no,
never, don't, ...): the word lists below contain none, and a filler word right before a
negation is kept so "just don't" stays "just don't". Applied to the system prompt and to user
text; assistant turns and tool results are left alone.
"""

from __future__ import annotations

import re

from legion_core.types import ChatRequest, Message, TextBlock

NEGATIONS = frozenset({
    "not", "no", "never", "none", "nor", "neither", "nothing", "nobody", "nowhere", "cannot",
    "without", "don't", "doesn't", "didn't", "won't", "wouldn't", "can't", "couldn't", "shouldn't",
    "isn't", "aren't", "wasn't", "weren't", "haven't", "hasn't", "hadn't", "mustn't", "dont",
    "doesnt", "didnt", "wont", "cant", "isnt", "arent", "except", "avoid",
})

# Longest first so that "could you please" wins over "please".
_FILLER_PHRASES = sorted([
    "i would like you to", "i would like to ask you to", "i want you to", "could you please",
    "can you please", "would you please", "could you", "can you", "would you", "please",
    "kindly", "i was wondering if you could", "if you don't mind", "if possible",
    "thank you in advance", "thanks in advance", "thank you", "thanks", "basically",
    "actually", "in order to", "as a matter of fact", "it is important to note that",
    "it should be noted that", "for what it's worth",
], key=len, reverse=True)
_LEVEL3_WORDS = ("the", "a", "an", "very", "really", "quite", "just", "simply", "rather", "somewhat")

#: Never rewritten: fenced code, inline code, and quoted strings (they may be literal input).
_CODE = re.compile(r"```.*?(?:```|\Z)|`[^`\n]+`|\"[^\"\n]{0,200}\"", re.S)
_NEG_ALT = "|".join(re.escape(n) for n in sorted(NEGATIONS, key=len, reverse=True))
_NEG_AHEAD = rf"(?!\s+(?:{_NEG_ALT})\b)"


def _phrase_re(phrase: str) -> re.Pattern[str]:
    body = r"\s+".join(re.escape(w) for w in phrase.split())
    return re.compile(rf"(?<![\w'])(?:{body})(?![\w']){_NEG_AHEAD},?", re.I)


_FILLERS = [_phrase_re(p) if p != "in order to" else re.compile(r"\bin order to\b", re.I)
            for p in _FILLER_PHRASES]
_FILLER_REPL = ["" if p != "in order to" else "to" for p in _FILLER_PHRASES]
_L3 = re.compile(rf"(?<![\w'])(?:{'|'.join(_LEVEL3_WORDS)})(?![\w']){_NEG_AHEAD}\s*", re.I)
_SENT = re.compile(r"(?<=[.!?])\s+")


def _ws(text: str) -> str:
    text = re.sub(r"[ \t]+\n", "\n", text)
    text = re.sub(r"[ \t]{2,}", " ", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text


def _tidy(text: str, first: bool) -> str:
    text = re.sub(r"([.!?])(?:[ \t]*[.!?,])+(?=\s|$)", r"\1", text)  # sentences emptied by fillers
    text = re.sub(r"\n[ \t]*[.!?,]+[ \t]*(?=\n|$)", "\n", text)  # a line left with only punctuation
    if first:
        text = re.sub(r"^\s*[.!?,]+\s*", "", text)
    text = re.sub(r"[ \t]{2,}", " ", text)
    text = re.sub(r"[ \t]+([,.;:!?])", r"\1", text)
    text = re.sub(r"(^|\n)[ \t]*,[ \t]*", r"\1", text)
    start = r"^\s*|" if first else ""
    text = re.sub(rf"({start}[.!?]\s+|\n)([a-z])", lambda m: m.group(1) + m.group(2).upper(), text)
    return text


def _dedupe_sentences(text: str) -> str:
    seen: set[str] = set()
    out: list[str] = []
    for s in _SENT.split(text):
        k = s.strip().lower()
        if k and k in seen:
            continue
        seen.add(k)
        out.append(s)
    return " ".join(out) if "\n" not in text else text  # keep layout of multi-line prose


def _prose(text: str, level: int, first: bool = True) -> str:
    if level >= 1:
        text = _ws(text)
    if level >= 2:
        for rx, repl in zip(_FILLERS, _FILLER_REPL, strict=True):
            text = rx.sub(repl, text)
    if level >= 3:
        text = _L3.sub("", text)
        text = _dedupe_sentences(text)
    if level >= 2:
        text = _tidy(text, first)
    return text


def compress_text(text: str, level: int) -> str:
    """Compress prose at `level`, leaving code spans and blocks byte-for-byte intact."""
    if not level or not text:
        return text
    if not 0 <= level <= 3:
        raise ValueError(f"compress_level must be 0-3, got {level}")
    out: list[str] = []
    pos = 0
    for m in _CODE.finditer(text):
        out.append(_prose(text[pos:m.start()], level, first=pos == 0))
        out.append(m.group(0))
        pos = m.end()
    out.append(_prose(text[pos:], level, first=pos == 0))
    return "".join(out).strip() if level >= 2 else "".join(out)


def compress_request(request: ChatRequest, level: int) -> ChatRequest:
    """A copy of `request` with its system prompt and user text compressed."""
    if not level:
        return request
    msgs: list[Message] = []
    for m in request.messages:
        if m.role not in ("user", "system"):
            msgs.append(m)
        elif isinstance(m.content, str):
            msgs.append(m.model_copy(update={"content": compress_text(m.content, level)}))
        else:
            blocks = [b.model_copy(update={"text": compress_text(b.text, level)})
                      if isinstance(b, TextBlock) else b for b in m.content]
            msgs.append(m.model_copy(update={"content": blocks}))
    system = compress_text(request.system, level) if request.system else request.system
    return request.model_copy(update={"messages": msgs, "system": system})
