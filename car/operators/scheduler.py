"""Tasks on a small pool of threads: the lightweight-tasks seed (004) in Python's terms.

A *cart* is one task's queue of work (an operator's events, in order). A *labor* is a
worker thread: it takes the cart at the head of the ready line, runs that cart's next
item, and puts the cart back at the end of the line if more items wait, so each task
sees its items in order, one at a time, and the tasks take turns. The *supervisor*
watches the line: when a ready cart has waited longer than `stall_s` while every labor
was busy (one blocked in I/O, or computing long), it wakes an idle labor or adds one (up
to one per cart, `most`); a labor added that way leaves after `retire_s` without work.
So an operator blocked in a call does not hold up the others.

A cart's items may come in *lanes* (an operator's inputs): a lane keeps at most `size`
items waiting, and one more pushes its oldest waiting item off the cart (`Put.PUSHED_OUT`),
so a task that falls behind holds a bounded backlog, never a growing one.

The common case costs no hand-over between threads: a labor that makes a cart ready (an
operator sending to a sibling) does not wake another labor; it runs that cart itself as
soon as its own item is done, and only if it is still busy `stall_s` later does the
supervisor hand the cart on. A scheduler with no labors runs ready carts on the thread
that calls `run_ready` (one task: no thread at all).

Python's GIL runs one thread's bytecode at a time: labors overlap waiting (I/O, sleeps,
native code that releases the GIL such as OpenCV and numpy), not Python computation.
"""

from __future__ import annotations

import enum
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

STALL_S = 0.005  # a ready cart that waited this long while every labor was busy gets a labor
SUPERVISE_S = 0.002  # how often the supervisor looks while some labor is busy
RETIRE_S = 5.0  # a labor added for a stall leaves after this long without work


class CartState(enum.Enum):
    """Where a cart is: no work, in the ready line, on a labor, or closed (its items are refused)."""

    IDLE = "idle"
    READY = "ready"
    RUNNING = "running"
    CLOSED = "closed"


# An Enum member's lookup costs 90 ns: the hot paths use these.
_IDLE, _READY, _RUNNING, _CLOSED = CartState.IDLE, CartState.READY, CartState.RUNNING, CartState.CLOSED


class Put(enum.Enum):
    """What became of an item put on a cart."""

    QUEUED = "queued"
    PUSHED_OUT = "queued, pushing its lane's oldest waiting item off the cart"
    REFUSED = "refused: the cart is closed"


class Lane:
    """Items of one kind on one cart, at most `size` of them waiting (see the module's docstring)."""

    __slots__ = ("pushed_out", "size", "waiting")

    def __init__(self, size: int):
        self.size = max(1, size)
        self.waiting: deque[_Queued] = deque()
        self.pushed_out = 0  # items pushed off the cart by newer ones


# An item on a cart and its lane, found on its cart by identity (never compared by value). A plain tuple: the
# hot path's cheapest record (a NamedTuple costs 5x as much to make, on every operator-to-operator hop).
_Queued = tuple[Any, "Lane | None"]
_QUEUED, _PUSHED_OUT, _REFUSED = Put.QUEUED, Put.PUSHED_OUT, Put.REFUSED


class Cart:
    """One task's queue: `run(item)` is called for each item, in order, on some labor (it must not raise)."""

    __slots__ = ("items", "name", "ready_since", "run", "state")

    def __init__(self, name: str, run: Callable[[Any], None]):
        self.name = name
        self.run = run
        self.items: deque[_Queued] = deque()
        self.state = _IDLE
        self.ready_since = 0.0


class Scheduler:
    """Carts, labors and a supervisor (see the module's docstring)."""

    def __init__(
        self,
        labors: int,
        most: int,
        *,
        stall_s: float = STALL_S,
        retire_s: float = RETIRE_S,
        clock: Callable[[], float] = time.monotonic,
        name: str = "car-labor",
    ):
        """`labors` threads from the start (0: carts run on the thread calling `run_ready`), up to `most`."""
        self._base = labors
        self._most = max(most, labors)
        self._stall_s = stall_s
        self._retire_s = retire_s
        self._clock = clock
        self._name = name
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # idle labors wait here
        self._quiet = threading.Condition(self._lock)  # the supervisor waits here while no labor is busy
        self._ready: deque[Cart] = deque()
        self._labors = 0
        self._idle = 0
        self._busy = 0
        self._closing = False
        self._local = threading.local()
        self._threads: list[threading.Thread] = []
        self.added = 0  # labors the supervisor added for stalls

    @property
    def labors(self) -> int:
        """Labor threads now."""
        return self._labors

    def cart(self, name: str, run: Callable[[Any], None]) -> Cart:
        """A new cart whose items go to `run`."""
        return Cart(name, run)

    def start(self) -> None:
        """Start the labors and, with any, the supervisor."""
        with self._lock:
            for _ in range(self._base):
                self._add_labor()
        if self._base:
            supervisor = threading.Thread(target=self._supervise, name=f"{self._name}-supervisor", daemon=True)
            supervisor.start()
            self._threads.append(supervisor)

    def put(self, cart: Cart, item: Any, lane: Lane | None = None) -> Put:
        """Queue `item` on `cart` (from any thread), in `lane` when given."""
        queued = (item, lane)
        put = _QUEUED
        with self._lock:
            if cart.state is _CLOSED:
                return _REFUSED
            cart.items.append(queued)
            if lane is not None:
                lane.waiting.append(queued)
                if len(lane.waiting) > lane.size:
                    _remove(cart.items, lane.waiting.popleft())
                    lane.pushed_out += 1
                    put = _PUSHED_OUT
            if cart.state is _IDLE:
                cart.state = _READY
                cart.ready_since = self._clock()
                self._ready.append(cart)
                if self._idle and not getattr(self._local, "labor", False):
                    self._work.notify()  # from a labor, the labor runs it next itself (see the module's docstring)
        return put

    def close_cart(self, cart: Cart) -> list[Any]:
        """Refuse the cart's items from now on; the items it still held."""
        with self._lock:
            left = [item for item, _ in cart.items]
            for _, lane in cart.items:
                if lane is not None:
                    lane.waiting.clear()
            cart.items.clear()
            if cart.state is _READY:
                self._ready.remove(cart)
            cart.state = _CLOSED
        return left

    def run_ready(self) -> None:
        """Run ready carts on this thread until none is ready (a scheduler without labors)."""
        while True:
            with self._lock:
                if not self._ready:
                    return
                cart, item = self._take()
            try:
                cart.run(item)
            finally:
                with self._lock:
                    self._done(cart)

    def close(self, timeout: float = 2.0) -> None:
        """Stop the labors once they finish their items (waiting up to `timeout` for each)."""
        with self._lock:
            self._closing = True
            self._work.notify_all()
            self._quiet.notify_all()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout)

    # -- the labors and the supervisor -------------------------------------------------------
    def _add_labor(self) -> None:
        """One more labor (the lock held)."""
        self._labors += 1
        thread = threading.Thread(target=self._labor, name=f"{self._name}-{self._labors}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _take(self) -> tuple[Cart, Any]:
        """The head of the ready line and its next item (the lock held)."""
        cart = self._ready.popleft()
        cart.state = _RUNNING
        item, lane = cart.items.popleft()
        if lane is not None:
            lane.waiting.popleft()  # it is its lane's oldest: a cart's items leave in order
        return cart, item

    def _done(self, cart: Cart) -> None:
        """A cart's item ran: back in line if more wait (the lock held)."""
        if cart.state is _CLOSED:
            return
        if cart.items:
            cart.state = _READY
            cart.ready_since = self._clock()
            self._ready.append(cart)
        else:
            cart.state = _IDLE

    def _labor(self) -> None:
        self._local.labor = True
        extra = self._labors > self._base
        with self._lock:
            while True:
                while not self._ready:
                    if self._closing:
                        self._labors -= 1
                        return
                    self._idle += 1
                    woken = self._work.wait(self._retire_s if extra else None)
                    self._idle -= 1
                    if not woken and not self._ready and self._labors > self._base:
                        self._labors -= 1
                        return
                cart, item = self._take()
                self._busy += 1
                if self._busy == 1:
                    self._quiet.notify()
                self._lock.release()
                try:
                    cart.run(item)
                finally:
                    self._lock.acquire()
                    self._busy -= 1
                    self._done(cart)

    def _supervise(self) -> None:
        with self._lock:
            while not self._closing:
                if not self._busy and not self._ready:
                    self._quiet.wait()
                    continue
                self._quiet.wait(SUPERVISE_S)
                self._unstall()

    def _unstall(self) -> None:
        """A cart ready for longer than `stall_s`: wake an idle labor, or add one (the lock held)."""
        if not self._ready or self._clock() - self._ready[0].ready_since < self._stall_s:
            return
        if self._idle:
            self._work.notify()
        elif self._labors < self._most:
            self.added += 1
            self._add_labor()


def _remove(items: deque[_Queued], oldest: _Queued) -> None:
    """Take a lane's oldest item off its cart: the same object (near the cart's head), not an equal one."""
    for index, queued in enumerate(items):
        if queued is oldest:
            del items[index]
            return
