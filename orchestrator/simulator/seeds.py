"""Seeded randomness that depends only on the seed and a name, never on call order elsewhere."""

from __future__ import annotations

import hashlib
import random


def _key(seed: int, parts: tuple[object, ...]) -> bytes:
    return ":".join([str(seed), *(str(p) for p in parts)]).encode()


def rng(seed: int, *parts: object) -> random.Random:
    """A generator of its own for (seed, parts): reproducible across processes."""
    return random.Random(hashlib.sha256(_key(seed, parts)).digest())


def fraction(seed: int, *parts: object) -> float:
    """A uniform number in [0, 1) fixed by (seed, parts)."""
    digest = hashlib.sha256(_key(seed, parts)).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def hex_id(seed: int, *parts: object, length: int = 32) -> str:
    """Lower-case hex digits fixed by (seed, parts); the tail of a Twilio-style SID."""
    return hashlib.sha256(_key(seed, parts)).hexdigest()[:length]
