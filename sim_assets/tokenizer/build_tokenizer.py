"""Build the offline tokenizer that the tiny recipes use (writes the files beside this script).

A byte-level BPE (GPT-2 style) trained with ``tokenizers`` on a synthetic corpus of tabletop
instructions and plan phrases. Byte-level means any text still tokenizes (unknown words fall
back to byte pieces); the BPE merges make the task vocabulary short. Run:

    python sim_assets/tokenizer/build_tokenizer.py
"""

from __future__ import annotations

import itertools
from pathlib import Path

VOCAB_SIZE = 768
PAD, BOS, EOS = "<|pad|>", "<|bos|>", "<|eos|>"

COLOURS = ["red", "green", "blue", "yellow", "orange", "purple", "black", "white", "grey", "pink"]
OBJECTS = [
    "cube",
    "block",
    "bin",
    "plate",
    "zone",
    "bowl",
    "cup",
    "ball",
    "box",
    "drawer",
    "peg",
    "target",
    "tray",
    "basket",
    "lid",
    "tower",
    "button",
    "handle",
    "goal",
    "object",
]
VERBS = [
    "pick",
    "lift",
    "place",
    "push",
    "stack",
    "reach",
    "grab",
    "move",
    "put",
    "drop",
    "slide",
    "open",
    "close",
    "press",
    "insert",
    "rotate",
    "align",
    "release",
    "grasp",
    "hold",
]
PLACES = [
    "on",
    "onto",
    "into",
    "in",
    "next to",
    "behind",
    "in front of",
    "left of",
    "right of",
    "above",
    "under",
    "towards",
    "near",
]
PLAN_STEPS = [
    "move above the",
    "lower to the",
    "close the gripper on the",
    "open the gripper over the",
    "lift the",
    "carry the",
    "approach the",
    "retreat from the",
    "done",
]
TEMPLATES = [
    "{verb} the {c1} {o1}",
    "{verb} up the {c1} {o1}",
    "{verb} the {c1} {o1} {place} the {c2} {o2}",
    "{verb} the {o1} {place} the {o2}",
    "please {verb} the {c1} {o1} {place} the {c2} {o2}.",
    "Then {verb} the {c1} {o1}, and {verb2} it {place} the {o2}.",
]


def corpus() -> list[str]:
    """Instructions and plan phrases over every colour, object, verb and place."""
    lines: list[str] = []
    combos = itertools.product(VERBS, COLOURS, OBJECTS)
    for i, (verb, c1, o1) in enumerate(combos):
        # Walk the other slots with co-prime strides so the corpus covers them without a
        # full cartesian product (which would be ~10^7 lines).
        c2 = COLOURS[(i * 3 + 1) % len(COLOURS)]
        o2 = OBJECTS[(i * 7 + 3) % len(OBJECTS)]
        place = PLACES[(i * 5) % len(PLACES)]
        verb2 = VERBS[(i * 11 + 2) % len(VERBS)]
        for t in TEMPLATES:
            lines.append(t.format(verb=verb, verb2=verb2, c1=c1, o1=o1, c2=c2, o2=o2, place=place))
        step = PLAN_STEPS[i % len(PLAN_STEPS)]
        lines.append(f"{step} {c1} {o1}")
        lines.append(f"step {i % 10}: {step} {o1}; then {verb2} it")
    return lines


def build(out_dir: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=[PAD, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, bos_token=BOS, eos_token=EOS
    )
    fast.save_pretrained(str(out_dir))


if __name__ == "__main__":
    build(Path(__file__).resolve().parent)
    print(f"wrote tokenizer to {Path(__file__).resolve().parent}")
