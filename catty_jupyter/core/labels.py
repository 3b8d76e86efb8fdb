"""Session labels: `adjective-animal-NNNN`, easy to say and type, unique per store."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable

ADJECTIVES = (
    "agile", "amber", "bold", "brave", "bright", "calm", "clever", "cosmic", "crisp", "curious",
    "daring", "deft", "eager", "fancy", "fearless", "gentle", "glad", "golden", "happy", "honest",
    "jolly", "keen", "kind", "lively", "lucky", "mellow", "merry", "mighty", "nimble", "noble",
    "patient", "plucky", "polite", "proud", "quick", "quiet", "rapid", "ready", "shiny", "silent",
    "snappy", "steady", "sunny", "swift", "tidy", "vivid", "warm", "wise", "witty", "zesty",
)  # fmt: skip

ANIMALS = (
    "badger", "bat", "bear", "beaver", "bison", "cat", "cobra", "crane", "crow", "deer",
    "dingo", "dolphin", "eagle", "falcon", "ferret", "finch", "fox", "gecko", "heron", "ibis",
    "jaguar", "koala", "lemur", "lion", "lynx", "marten", "mole", "moose", "newt", "otter",
    "owl", "panda", "panther", "puffin", "quail", "rabbit", "raven", "seal", "shark", "sloth",
    "stork", "swan", "tiger", "toad", "turtle", "walrus", "weasel", "whale", "wolf", "yak",
)  # fmt: skip

LABEL_PATTERN = re.compile(r"^[a-z]+-[a-z]+-\d{4}$")


def random_label() -> str:
    """One random label; not checked for uniqueness."""
    return "-".join(
        (secrets.choice(ADJECTIVES), secrets.choice(ANIMALS), f"{secrets.randbelow(10000):04d}")
    )


def new_label(is_taken: Callable[[str], bool], attempts: int = 100) -> str:
    """A label that `is_taken` says is free."""
    for _ in range(attempts):
        label = random_label()
        if not is_taken(label):
            return label
    raise RuntimeError("could not find a free session label; the store is unusually full")


def looks_like_label(text: str) -> bool:
    """True when TEXT has the shape of a label (rather than a session id)."""
    return bool(LABEL_PATTERN.match(text))
