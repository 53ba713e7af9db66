"""Restoring the case of lower-cased model output: each word's usual spelling in the training data.

The model learns lower-cased English ("talk to mary on sunday"). A truecaser, as in Moses,
remembers how every word is usually written *inside* a sentence, where its case is its own and not
the sentence's: "Mary" and "Sunday" are capitalised there, "the" is not. Applying it and then
capitalising the first word gives "Talk to Mary on Sunday".
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence

# after these tokens the next word starts a sentence (or a quotation), so its case says nothing
_SENTENCE_START_AFTER = {".", "!", "?", '"', "“", ":", "…", "..."}


class TrueCaser:
    """Lower-case word → its most frequent spelling in mid-sentence positions.

    Only words whose usual spelling is not all lower-case are stored, so the table stays small.
    """

    def __init__(self, forms: dict[str, str] | None = None):
        self.forms = dict(forms or {})

    @classmethod
    def fit(cls, sentences: Iterable[Sequence[str]]) -> TrueCaser:
        """Count the spellings of every word, skipping sentence-initial positions.

        :param sentences: cased token lists (e.g. the English training side before lower-casing).
        Ties go to the lower-case spelling, then to the alphabetically first.
        """
        return cls.from_counts(count_spellings(sentences))

    @classmethod
    def from_counts(cls, counts: Mapping[str, int]) -> TrueCaser:
        """The table from :func:`count_spellings`' counts (of one corpus, or several parts of
        it added up: a preprocessed cache counts each chunk in a worker process)."""
        by_word: dict[str, dict[str, int]] = defaultdict(dict)
        for spelling, n in counts.items():
            by_word[spelling.lower()][spelling] = n
        forms = {}
        for lower, spellings in by_word.items():
            best = min(spellings.items(), key=lambda kv: (-kv[1], kv[0] != lower, kv[0]))[0]
            if best != lower:
                forms[lower] = best
        return cls(forms)

    def apply(self, tokens: Sequence[str]) -> list[str]:
        """The tokens in their usual spelling (unknown words stay as they are)."""
        return [self.forms.get(tok, tok) for tok in tokens]

    def apply_text(self, text: str) -> str:
        """A sentence with every word in its usual spelling, spacing untouched (for subword
        output, which is joined into text before it is truecased)."""
        return re.sub(r"\w+", lambda m: self.forms.get(m.group(0), m.group(0)), text)

    def to_dict(self) -> dict[str, str]:
        """The table, for checkpoints."""
        return dict(self.forms)

    def __len__(self) -> int:
        return len(self.forms)

    def __repr__(self) -> str:
        return f"TrueCaser({len(self)} words, e.g. {list(self.forms.values())[:5]})"


def count_spellings(sentences: Iterable[Sequence[str]]) -> Counter[str]:
    """How often each spelling appears inside a sentence (not at its start, where the case is
    the sentence's), over cased token lists."""
    counts: Counter[str] = Counter()
    for tokens in sentences:
        counts.update(tok for prev, tok in zip(tokens, tokens[1:])
                      if prev not in _SENTENCE_START_AFTER)
    return counts
