#!/usr/bin/env python3
"""The cost of touching fresh memory on this machine: fills a new 1.25 GB array three
times (the first fill faults in pages the machine has not backed yet; later fills reuse
them). Usage: bench/first_touch.py"""
import time

import numpy as np

for i in range(3):
    t = time.time()
    a = np.ones(1250 * 1024 * 1024 // 4, dtype=np.float32)
    print(f"fill {i + 1} of a fresh 1.25 GB array: {time.time() - t:.2f} s")
    del a
