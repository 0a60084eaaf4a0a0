"""Measure the verdict's thresholds on a corpus the simulator generates: its error rates.

    python benchmarks/verdict_thresholds.py [--pairs 300]

Pictures: the simulator's pictures of random shapes, each against its own re-encoded,
resized copy (what a re-uploading host serves: must be `present`) and against another
picture (must be `changed`). Pages: each gallery page against itself rendered on another
request (a new view counter, nonce, timestamp and rotating ad: `present`) and against
another gallery on the same template (`changed`); and each gallery against a host's
"page not found" page (`changed`). Every body goes through the engine's own fingerprinting
(`workflows.recheck.fingerprint`) and verdict (`workflows.core.verdict.compare`).
Prints the false `present` and false `changed` rates at the shipped thresholds, and the
distance ranges, in one run. Nothing leaves this machine: it is all generated here.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time

from workflows.core.similarity import PDQ_MATCH, TLSH_MATCH, pdq_distance, tlsh_distance
from workflows.core.verdict import Evidence, compare
from workflows.recheck.fingerprint import fingerprints
from workflows.sim.content import PAGE_TYPE, PICTURE_TYPE, page, picture, soft_404


def evidence(body: bytes, content_type: str) -> Evidence:
    """Return the engine's evidence for BODY, as a re-check would record it."""
    found = fingerprints(body, content_type, complete=True)
    return Evidence(
        sha256=hashlib.sha256(body).hexdigest(),
        kind=found.kind,
        pdq=found.pdq,
        tlsh=found.tlsh,
        text_sha256=found.text_sha256,
    )


def rate(flags: list[bool]) -> str:
    """Return how many of FLAGS are true, as 'n of N (p %)'."""
    wrong = sum(flags)
    return f"{wrong} of {len(flags)} ({100 * wrong / max(len(flags), 1):.2f} %)"


def spread(values: list[int]) -> str:
    """Return min / median / max of VALUES."""
    return f"{min(values)} / {statistics.median(values):g} / {max(values)}"


def main() -> None:
    """Generate the corpus, classify every pair, print the rates."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=300, help="pairs of each kind")
    pairs = parser.parse_args().pairs
    started = time.monotonic()
    pictures = [evidence(picture(seed), PICTURE_TYPE) for seed in range(pairs + 1)]
    copies = [evidence(picture(seed, 1 + seed % 3), PICTURE_TYPE) for seed in range(pairs)]
    pages = [evidence(page(seed, 0, dynamic=True), PAGE_TYPE) for seed in range(pairs + 1)]
    again = [evidence(page(seed, 7 + seed, dynamic=True), PAGE_TYPE) for seed in range(pairs)]
    missing = evidence(soft_404("img.example.test", 3), PAGE_TYPE)

    same_pic = [compare(copies[n], pictures[n])[0] for n in range(pairs)]
    other_pic = [compare(pictures[n + 1], pictures[n])[0] for n in range(pairs)]
    same_page = [compare(again[n], pages[n])[0] for n in range(pairs)]
    other_page = [compare(pages[n + 1], pages[n])[0] for n in range(pairs)]
    not_found = [compare(missing, pages[n])[0] for n in range(pairs)]

    def pdq(a: Evidence, b: Evidence) -> int:
        return pdq_distance(a.pdq or "", b.pdq or "")

    def tl(a: Evidence, b: Evidence) -> int:
        return tlsh_distance(a.tlsh or "", b.tlsh or "")

    print(f"corpus: {pairs} pairs of each kind, generated in {time.monotonic() - started:.1f} s")
    print(f"pictures, PDQ_MATCH = {PDQ_MATCH}:")
    print(f"  re-encoded copy judged changed (false changed): {rate([not s for s in same_pic])}")
    print(f"  another picture judged present (false present): {rate(other_pic)}")
    print(f"  distance same: {spread([pdq(copies[n], pictures[n]) for n in range(pairs)])}")
    print(f"  distance other: {spread([pdq(pictures[n + 1], pictures[n]) for n in range(pairs)])}")
    print(f"pages, TLSH_MATCH = {TLSH_MATCH} (after the same normalised text):")
    print(
        f"  same page, another request, judged changed (false changed): "
        f"{rate([not s for s in same_page])}"
    )
    print(f"  another gallery judged present (false present): {rate(other_page)}")
    print(f"  'page not found' judged present (false present): {rate(not_found)}")
    print(f"  distance same: {spread([tl(again[n], pages[n]) for n in range(pairs)])}")
    print(f"  distance other: {spread([tl(pages[n + 1], pages[n]) for n in range(pairs)])}")


if __name__ == "__main__":
    main()
