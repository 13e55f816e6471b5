"""Blocking library calls that Ctrl-C can interrupt.

A thread blocked inside a C function cannot run Python signal handlers, so on the main thread
(the only one that gets KeyboardInterrupt) the C call runs on a small pool of worker threads
("rmq-blocking-N") while the main thread waits for it in short slices: a Ctrl-C is raised within
about 50 ms. The abandoned call still finishes on its worker within its own timeout and frees
what it made. Other threads call C directly. ``fn`` must read rmq_last_error_message() itself
(it is per thread), i.e. do the call *and* its check.
"""

import concurrent.futures
import os
import threading
from typing import Callable, Optional, TypeVar

T = TypeVar("T")

_pool: Optional[concurrent.futures.ThreadPoolExecutor] = None
_pool_lock = threading.Lock()
#: The main thread waits in slices this long, so a signal handler runs between them.
WAIT_SLICE = 0.05


def _forget_pool_in_child() -> None:
    # The parent's workers do not exist in a forked child: start afresh there.
    global _pool, _pool_lock
    _pool = None
    _pool_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_in_child)


def _executor() -> concurrent.futures.ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="rmq-blocking")
        return _pool


def call(fn: Callable[[], T]) -> T:
    """Returns fn(), run so that Ctrl-C interrupts the wait on the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return fn()
    future = _executor().submit(fn)
    # not result(timeout): its TimeoutError could not be told apart from rmq's timeout errors
    while not concurrent.futures.wait([future], timeout=WAIT_SLICE).done:
        pass
    return future.result()
