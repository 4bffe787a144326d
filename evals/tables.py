"""CSV tables the evaluators write (per-video rows, export indexes, leaderboards)."""

from __future__ import annotations

import csv
import os
from pathlib import Path


def write_csv(path, rows: list[dict], first=()) -> None:
    """Write ``rows`` to ``path`` atomically (a temp file renamed into place).

    Columns: ``first``, then the union of the rows' keys in first-seen order, leaving out
    private keys (``_name``); a row's missing cells stay empty and booleans are written 0/1.
    """
    path = Path(path)
    cols = list(first)
    for r in rows:
        cols += [k for k in r if k not in cols and not k.startswith("_")]
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (int(v) if isinstance(v, bool) else v) for k, v in r.items()})
    os.replace(tmp, path)
