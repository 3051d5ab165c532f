"""How much of a list of medication names the medication vocabulary recognises.

    python -m rules.tools.vocabulary_coverage tests/data/top300_drugs.txt

One name a line; blank lines and lines starting with '#' are skipped. Prints the share recognised
(any class but 'unrecognised'), the opioid-related names found with their class, and every
unrecognised name with the reason, then the time to classify the list.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

from rules.medications import CLASS_PRIORITY, classify


def read_names(path: Path) -> list[str]:
    return [
        line.strip()
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        return 2
    names = read_names(Path(args[0]))
    start = time.perf_counter()
    results = [(n, classify(n)) for n in names]
    cold = time.perf_counter() - start
    counts = Counter(r.drug_class for _, r in results)
    recognised = len(names) - counts["unrecognised"]
    print(f"{args[0]}: {len(names)} names")
    print(f"recognised: {recognised}/{len(names)} ({100.0 * recognised / max(len(names), 1):.1f}%)")
    for cls in CLASS_PRIORITY:
        if counts[cls]:
            print(f"  {cls}: {counts[cls]}")
    print("opioid-related names (every class but non_opioid):")
    for n, r in results:
        if r.drug_class not in ("non_opioid", "unrecognised"):
            print(f"  {n}: {r.drug_class} ({', '.join(r.matched)})")
    unrec = [(n, r) for n, r in results if r.drug_class == "unrecognised"]
    print(f"unrecognised: {len(unrec)}")
    for n, r in unrec:
        print(f"  {n}: {r.source}")
    print(
        f"classified in {cold * 1e3:.1f} ms cold ({cold * 1e6 / max(len(names), 1):.0f} µs a name, "
        "vocabulary load included when first used)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
