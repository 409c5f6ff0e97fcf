"""Language factors: held-out phrasings, typos, extra words, word order, and an instruction
that names an object not in the scene. Each transforms the instruction text from the
factor's seeded generator, so an episode seed always gives the same text. The words filled
into the template (``Episode.words``, e.g. the colour) are kept intact except by
``absent_object``, whose point is to change them."""

from __future__ import annotations

import numpy as np

from embodied_mm.envs.perturbations.base import Context, Factor
from embodied_mm.envs.tasks import layout
from embodied_mm.envs.tasks.base import Episode

LETTERS = "abcdefghijklmnopqrstuvwxyz"


class Phrasing(Factor):
    """A held-out paraphrase of the task (never in training demos), as ``--split heldout``."""

    name = "phrasing"
    group = "language"
    description = "held-out paraphrase"
    levels = {1: "heldout"}  # noqa: RUF012

    def instruction(
        self, text: str, episode: Episode, rng: np.random.Generator, ctx: Context
    ) -> str:
        templates = ctx.task.instructions.heldout
        return templates[int(rng.integers(len(templates)))].format(**episode.words)


class AbsentObject(Factor):
    """The colour the instruction names is replaced by a palette colour no object in the
    scene has: the instruction asks for something that is not there. Success still means
    the original task, so the rate is how often the policy does it anyway."""

    name = "absent_object"
    group = "language"
    description = "names a colour no object has"
    levels = {1: "unseen_colour"}  # noqa: RUF012

    def instruction(
        self, text: str, episode: Episode, rng: np.random.Generator, ctx: Context
    ) -> str:
        present = {_nearest_palette(rgba) for rgba in episode.rgba.values()}
        present |= set(episode.words.values())
        free = [c for c in layout.PALETTE if c not in present]
        if not free:
            raise RuntimeError("every palette colour is in the scene; no absent one to name")
        words = text.split(" ")
        for named in sorted({w for w in episode.words.values() if w in layout.PALETTE}):
            absent = free[int(rng.integers(len(free)))]
            words = [absent if w == named else w for w in words]
        return " ".join(words)


def _nearest_palette(rgba: tuple[float, ...]) -> str:
    rgb = np.asarray(rgba[:3])
    return min(
        layout.PALETTE, key=lambda c: float(np.sum((np.asarray(layout.PALETTE[c]) - rgb) ** 2))
    )


FILLERS = ("please", "now", "carefully", "just", "kindly", "gently", "quickly")
PREFIXES = ("please", "okay robot,", "hey,", "now", "alright,", "when you are ready,")
SUFFIXES = ("please", "thanks", "right now", "if you can", "carefully", "for me")


class ExtraWords(Factor):
    """Level 1: a polite prefix or suffix. Level 2: a prefix, a filler word inside the
    sentence and a suffix."""

    name = "extra_words"
    group = "language"
    description = "extra words around and inside the instruction"
    levels = {1: "prefix_or_suffix", 2: "prefix_filler_suffix"}  # noqa: RUF012

    def instruction(
        self, text: str, episode: Episode, rng: np.random.Generator, ctx: Context
    ) -> str:
        words = text.split(" ")
        prefix = PREFIXES[int(rng.integers(len(PREFIXES)))]
        suffix = SUFFIXES[int(rng.integers(len(SUFFIXES)))]
        if self.level == 1:
            return f"{prefix} {text}" if rng.random() < 0.5 else f"{text} {suffix}"
        at = int(rng.integers(1, len(words))) if len(words) > 1 else 1
        filler = FILLERS[int(rng.integers(len(FILLERS)))]
        return " ".join([prefix, *words[:at], filler, *words[at:], suffix])


class WordOrder(Factor):
    """Level 1: two neighbouring words swapped. Level 2: all words in a random order."""

    name = "word_order"
    group = "language"
    description = "words swapped / shuffled"
    levels = {1: "swap_two", 2: "shuffle"}  # noqa: RUF012

    def instruction(
        self, text: str, episode: Episode, rng: np.random.Generator, ctx: Context
    ) -> str:
        words = text.split(" ")
        if len(set(words)) < 2:
            return text
        for _ in range(100):
            if self.level == 1:
                i = int(rng.integers(len(words) - 1))
                out = [*words[:i], words[i + 1], words[i], *words[i + 2 :]]
            else:
                out = [words[j] for j in rng.permutation(len(words))]
            if out != words:
                return " ".join(out)
        return text


class Typos(Factor):
    """``value`` typos (a letter swapped with its neighbour, dropped, doubled or replaced)
    in words other than the template's fields."""

    name = "typos"
    group = "language"
    description = "character typos"
    unit = "typos"
    levels = {1: 1, 2: 3}  # noqa: RUF012

    def instruction(
        self, text: str, episode: Episode, rng: np.random.Generator, ctx: Context
    ) -> str:
        words = text.split(" ")
        protected = set(episode.words.values())
        candidates = [i for i, w in enumerate(words) if len(w) >= 3 and w not in protected]
        if not candidates:
            return text
        for _ in range(int(self.value)):
            i = candidates[int(rng.integers(len(candidates)))]
            words[i] = _typo(words[i], rng)
        return " ".join(words)


def _typo(word: str, rng: np.random.Generator) -> str:
    """``word`` with one edit that changes it."""
    for _ in range(100):
        k = int(rng.integers(len(word)))
        op = int(rng.integers(4))
        if op == 0 and k < len(word) - 1:
            out = word[:k] + word[k + 1] + word[k] + word[k + 2 :]
        elif op == 1:
            out = word[:k] + word[k + 1 :]
        elif op == 2:
            out = word[:k] + word[k] + word[k:]
        else:
            out = word[:k] + LETTERS[int(rng.integers(len(LETTERS)))] + word[k + 1 :]
        if out != word:
            return out
    return word + "x"
