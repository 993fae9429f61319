"""Character and word vocabularies: token <-> index maps that models save as JSON.

Index 0 is padding and index 1 is "unknown" in every vocabulary, so a model can mask padding
with ``ids != 0`` and an unseen token (a new typo, a hashtag born after training) still
reaches the network as a learned UNK embedding instead of being dropped silently.

Vocabularies are built from the training split only: counting validation or test tokens
would leak which words exist there. Ties in frequency are broken alphabetically so that the
same data always gives the same indices (and therefore the same weights for a seed).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

PAD = "<pad>"
UNK = "<unk>"
PAD_ID = 0
UNK_ID = 1


@dataclass
class Vocabulary:
    """An ordered token list; ``index`` maps token -> id (``PAD_ID``/``UNK_ID`` reserved)."""

    tokens: list[str] = field(default_factory=lambda: [PAD, UNK])

    def __post_init__(self) -> None:
        if self.tokens[:2] != [PAD, UNK]:
            raise ValueError("a vocabulary must start with the padding and unknown tokens")
        self.index = {token: i for i, token in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self.index and self.index[token] > UNK_ID

    @classmethod
    def build(
        cls, sequences: Iterable[Iterable[str]], *, min_count: int = 1, max_size: int | None = None
    ) -> Vocabulary:
        """Tokens seen at least ``min_count`` times, most frequent first, at most ``max_size`` in all."""
        counts: Counter = Counter()
        for sequence in sequences:
            counts.update(sequence)
        ranked = sorted(
            (t for t, c in counts.items() if c >= min_count and t not in (PAD, UNK)), key=lambda t: (-counts[t], t)
        )
        if max_size is not None:
            ranked = ranked[: max(0, max_size - 2)]
        return cls([PAD, UNK, *ranked])

    def encode(self, tokens: Sequence[str], max_len: int) -> list[int]:
        """Ids of the first ``max_len`` tokens, not padded (the MRLF encoding pads its batches itself)."""
        get = self.index.get
        return [get(t, UNK_ID) for t in tokens[:max_len]]

    def to_dict(self) -> dict[str, Any]:
        return {"tokens": self.tokens}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Vocabulary:
        return cls(list(data["tokens"]))


def chars(text: str) -> list[str]:
    """Character tokens (code points) of a case-folded string.

    Case-folding halves the character set and makes ``NYC``/``nyc`` meet; the paper's
    character-aware module is about spelling variants, not capitalisation.
    """
    return list(text.casefold())


def hashtag_string(tags: Sequence[str]) -> str:
    """The hashtags of a post as one character sequence, ``#`` marking each tag's start.

    The character-level hashtag branch reads this string, so a convolution window sees the
    tag boundary and cross-modal attention can align ``#eiffeltower`` with "eiffel tower".
    """
    return " ".join(f"#{t}" for t in tags)
