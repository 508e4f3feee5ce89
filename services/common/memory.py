"""Give freed heap memory back to the operating system after a large batch.

A long-running scheduler that once loaded a year of market data keeps the freed
pages otherwise (glibc's allocator holds them); ``malloc_trim`` returns them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging

logger = logging.getLogger(__name__)


def release_memory() -> None:
    gc.collect()
    name = ctypes.util.find_library("c")
    if not name:
        return
    try:
        ctypes.CDLL(name).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        logger.debug("malloc_trim is not available here")
