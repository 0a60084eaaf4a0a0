"""Distances between perceptual fingerprints, and the distances that mean "the same".

Pure: two hashes in, an integer out (`tlsh` is a C library of hash arithmetic, no I/O).
A distance at most the threshold means the same content; the verdict is decided elsewhere.

PDQ_MATCH = 31 bits of 256 is the threshold of Meta's HMA and ThreatExchange for PDQ:
a picture re-encoded, resized or lightly edited stays within it. Measured on 480×360
pictures of random shapes (tests/test_fingerprint.py): each picture against itself
resized to 90 % and re-encoded as JPEG quality 55, 0 to 12 bits (median 4, 500 pictures);
two different pictures, 102 to 160 (median 128, 499 pairs).

TLSH_MATCH = 100 is ours, measured on the normalised text (workflows.recheck.fingerprint)
of gallery pages on one template, of nonsense words with English letter frequencies,
about 2 KB of text each. A gallery rendered twice, with another view counter, nonce,
timestamp and a visible rotating text ad: 13 to 112 (median 37, 1000 pairs). Two
different galleries: 107 to 317 (median 172, 1000 pairs). A gallery against the site's
"page not found" page: 211 to 431. The two first overlap only from 107 to 112: at 100
no different pair matched, and 5 same pairs in 1000 read as changed, which costs an
analyst's look and never counts toward removal. TLSH needs text: with about 1.1 KB the
same gallery was over 100 in 89 of 1000 pairs (different ones still all 122 or more).
"""

from __future__ import annotations

import re

import tlsh

PDQ_MATCH = 31  # at most this Hamming distance: the same picture (Meta's HMA threshold)
TLSH_MATCH = 100  # at most this TLSH distance: the same page (measured: see above)

_PDQ_HEX = re.compile(r"[0-9a-fA-F]{64}")


def pdq_distance(a: str, b: str) -> int:
    """Return the Hamming distance (0-256) between two PDQ hashes of 64 hex characters."""
    return (_pdq_bits(a) ^ _pdq_bits(b)).bit_count()


def tlsh_distance(a: str, b: str) -> int:
    """Return the TLSH distance between two TLSH hashes (0: identical; no upper bound)."""
    try:
        return int(tlsh.diff(a, b))
    except ValueError:
        raise ValueError(f"not two TLSH hashes: {a!r}, {b!r}") from None


def _pdq_bits(digest: str) -> int:
    """Return a PDQ hash as an integer, refusing anything but 64 hex characters."""
    if not _PDQ_HEX.fullmatch(digest):
        raise ValueError(f"not a PDQ hash (64 hex characters): {digest!r}")
    return int(digest, 16)
