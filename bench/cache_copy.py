#!/usr/bin/env python3
"""Copy bandwidth (numpy copyto, read + write) against the working-set size: where this
VM's share of the caches ends (docs/KERNELS.md "Session 10"). Run with the project's
.venv python: `.venv/bin/python bench/cache_copy.py`."""
import time

import numpy as np

for mb in [0.25, 0.5, 1, 2, 4, 8, 16, 24, 32, 64, 128]:
    n = int(mb * (1 << 20) / 4)
    a = np.ones(n, dtype=np.float32)
    b = np.empty_like(a)
    reps = max(3, int(512 / mb))
    best = 1e9
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(reps):
            np.copyto(b, a)
        best = min(best, (time.perf_counter() - t) / reps)
    print(f"{mb:7.2f} MB copy: {2 * mb / 1024 / best:6.1f} GB/s (read+write)")
