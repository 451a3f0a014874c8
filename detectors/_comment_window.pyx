# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The flood detector's comment bookkeeping compiled: what ``PyCommentWindow`` in ``comment_window.py`` does (the
reference, which tests/test_comment_window.py holds this to), with C++ containers for the order and the numbers.

Keys stay Python strings, compared exactly: a dict finds a comment id or a viewer (its hash is cached on the string),
and the containers below keep the order in which they are forgotten. So a comment costs a few C calls and no
Python object of its own: the reference made an int per id and a dict per viewer.

- seen: ``_ids`` (id → None) for membership; ``_arrivals`` (id, ts) in arrival order, holding a reference to the id.
- traffic: ``_traffic``, bucket → messages, ordered by bucket (the buckets to drop are its first ones).
- viewers: ``_slot_of`` (user → slot); per slot the user (a reference), its buckets in insertion order, and its place
  in a doubly linked list, least recently active first; freed slots are reused.
"""

from cpython.dict cimport PyDict_Contains, PyDict_DelItem, PyDict_GetItem, PyDict_SetItem
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF, Py_INCREF
from libc.stdint cimport INT64_MIN, int32_t, int64_t, uint8_t
from libcpp.deque cimport deque
from libcpp.map cimport map as cmap
from libcpp.pair cimport pair
from libcpp.vector cimport vector
from cython.operator cimport dereference as deref, preincrement as inc

import sys

cdef extern from *:
    """
    struct Arrival { PyObject* id; int64_t ts; };
    """
    cdef struct Arrival:
        PyObject* id
        int64_t ts

ctypedef pair[int64_t, uint8_t] BucketHow


cdef inline bint _has_start(int64_t ts, int64_t window_ms) except -1:
    """Whether the window ending at ``ts`` starts at a time int64 holds (``ts - window_ms``): near int64's lowest it
    starts before every time kept, and nothing is old enough to forget."""
    if window_ms < 0:
        raise ValueError(f"a window of {window_ms} ms")
    return ts >= INT64_MIN + window_ms
DEF NONE = -1
DEF NO_BOUND = 4611686018427387903  # (1 << 62) - 1, as comment_window.NO_BOUND


cdef class CommentWindow:
    cdef dict _ids
    cdef deque[Arrival] _arrivals
    cdef cmap[int64_t, int64_t] _traffic
    cdef dict _slot_of
    cdef vector[PyObject*] _users
    cdef vector[vector[BucketHow]] _buckets
    cdef vector[int32_t] _prev, _next, _free
    cdef int32_t _head, _tail
    cdef Py_ssize_t _viewer_count

    def __cinit__(self):
        self._ids = {}
        self._slot_of = {}
        self._head = NONE
        self._tail = NONE
        self._viewer_count = 0

    def __dealloc__(self):
        cdef Arrival a
        for a in self._arrivals:
            Py_DECREF(<object>a.id)
        cdef int32_t s = self._head
        while s != NONE:
            Py_DECREF(<object>self._users[s])
            s = self._next[s]

    # -- a viewer's comment --------------------------------------------------------------------------

    cpdef object take(
        self,
        str event_id,
        str user,
        int64_t ts,
        int64_t bucket_ms,
        int64_t window_ms,
        Py_ssize_t max_ids,
        bint commercial,
        Py_ssize_t max_viewers,
    ):
        if bucket_ms <= 0:
            raise ValueError(f"buckets of {bucket_ms} ms")
        if ts < INT64_MIN + bucket_ms:  # its bucket, rounded down, would be below int64's lowest
            raise OverflowError(f"a comment at {ts} ms: its bucket is out of range")
        if not self.first_delivery(event_id, ts, window_ms, max_ids):
            return None
        cdef int64_t bucket = ts // bucket_ms * bucket_ms  # rounded down (Python's division: cdivision is off)
        self.count(bucket, ts, window_ms)
        if max_viewers > 0:
            self.remember_viewer(user, bucket, ts, commercial, window_ms, max_viewers)
        return bucket

    # -- seen ids ------------------------------------------------------------------------------------

    cpdef bint first_delivery(self, str event_id, int64_t ts, int64_t window_ms, Py_ssize_t max_ids) except -1:
        if PyDict_Contains(self._ids, event_id):
            return False
        cdef bint timed = _has_start(ts, window_ms)
        self._remember_id(event_id, ts)
        cdef int64_t horizon = ts - window_ms if timed else INT64_MIN
        while not self._arrivals.empty() and (
            <Py_ssize_t>self._arrivals.size() > max_ids or (timed and self._arrivals.front().ts <= horizon)
        ):
            self._forget_oldest_id()
        return True

    cdef int _remember_id(self, str event_id, int64_t ts) except -1:
        PyDict_SetItem(self._ids, event_id, None)
        cdef Arrival a
        a.id = <PyObject*>event_id
        a.ts = ts
        Py_INCREF(event_id)
        self._arrivals.push_back(a)
        return 0

    cdef int _forget_oldest_id(self) except -1:
        cdef PyObject* oldest = self._arrivals.front().id
        self._arrivals.pop_front()
        PyDict_DelItem(self._ids, <object>oldest)
        Py_DECREF(<object>oldest)
        return 0

    # -- traffic -------------------------------------------------------------------------------------

    cpdef count(self, int64_t bucket, int64_t ts, int64_t window_ms):
        cdef cmap[int64_t, int64_t].iterator it = self._traffic.find(bucket)
        if it != self._traffic.end():
            self._traffic[bucket] = deref(it).second + 1  # (Cython's deref of a map iterator reads a copy)
            return
        if not _has_start(ts, window_ms):
            self._traffic[bucket] = 1
            return
        cdef int64_t horizon = ts - window_ms
        while not self._traffic.empty() and deref(self._traffic.begin()).first <= horizon:
            self._traffic.erase(self._traffic.begin())
        self._traffic[bucket] = 1

    cpdef int64_t traffic_sum(self, int64_t low, int64_t high=NO_BOUND):
        cdef int64_t total = 0
        cdef cmap[int64_t, int64_t].iterator it = self._traffic.lower_bound(low)
        while it != self._traffic.end() and deref(it).first <= high:
            total += deref(it).second
            inc(it)
        return total

    def first_bucket_after(self, int64_t horizon):
        cdef cmap[int64_t, int64_t].iterator it = self._traffic.upper_bound(horizon)
        return None if it == self._traffic.end() else deref(it).first

    @property
    def traffic(self):
        return {p.first: p.second for p in self._traffic}

    # -- viewers -------------------------------------------------------------------------------------

    cpdef remember_viewer(
        self, str user, int64_t bucket, int64_t ts, bint commercial, int64_t window_ms, Py_ssize_t max_viewers
    ):
        cdef bint timed = _has_start(ts, window_ms)
        cdef int64_t horizon = ts - window_ms if timed else INT64_MIN
        cdef uint8_t how = 2 if commercial else 1
        cdef PyObject* found = PyDict_GetItem(self._slot_of, user)
        cdef int32_t s
        if found == NULL:
            s = self._new_slot(user)
        else:
            s = <int32_t><object>found
            self._unlink(s)
            self._append(s)
            if timed:
                self._drop_buckets(s, horizon)
        self._mark(s, bucket, how, True)
        while self._head != NONE and (
            self._viewer_count > max_viewers
            or self._buckets[self._head].empty()  # (kept so by no comment: data read back)
            or (timed and self._latest_bucket(self._head) <= horizon)
        ):
            self._forget_viewer(self._head)

    cdef void _mark(self, int32_t s, int64_t bucket, uint8_t how, bint add) noexcept:
        """The viewer's ``bucket`` marked ``how`` (or-ed into its marks when ``add``, else replacing them), added
        last when new: a dict's update, in the reference."""
        cdef vector[BucketHow]* buckets = &self._buckets[s]
        cdef size_t k
        for k in range(buckets.size()):
            if buckets[0][k].first == bucket:
                buckets[0][k].second = (buckets[0][k].second | how) if add else how
                return
        buckets.push_back(BucketHow(bucket, how))

    cdef int32_t _new_slot(self, str user) except -1:
        cdef int32_t s = self._free.back() if not self._free.empty() else <int32_t>self._users.size()
        PyDict_SetItem(self._slot_of, user, s)  # first: if it fails, nothing else has changed
        if not self._free.empty():
            self._free.pop_back()
            self._buckets[s].clear()
            self._users[s] = <PyObject*>user
        else:
            self._users.push_back(<PyObject*>user)
            self._buckets.push_back(vector[BucketHow]())
            self._prev.push_back(NONE)
            self._next.push_back(NONE)
        Py_INCREF(user)
        self._append(s)
        self._viewer_count += 1
        return s

    cdef void _append(self, int32_t s) noexcept:
        self._prev[s] = self._tail
        self._next[s] = NONE
        if self._tail != NONE:
            self._next[self._tail] = s
        else:
            self._head = s
        self._tail = s

    cdef void _unlink(self, int32_t s) noexcept:
        if self._prev[s] != NONE:
            self._next[self._prev[s]] = self._next[s]
        else:
            self._head = self._next[s]
        if self._next[s] != NONE:
            self._prev[self._next[s]] = self._prev[s]
        else:
            self._tail = self._prev[s]

    cdef void _drop_buckets(self, int32_t s, int64_t horizon) noexcept:
        """The buckets at or before ``horizon``, dropped, the others kept in order."""
        cdef vector[BucketHow]* buckets = &self._buckets[s]
        cdef size_t k, kept = 0
        for k in range(buckets.size()):
            if buckets[0][k].first > horizon:
                buckets[0][kept] = buckets[0][k]
                kept += 1
        buckets.resize(kept)

    cdef int64_t _latest_bucket(self, int32_t s) noexcept:
        """The latest of the viewer's buckets (it has one)."""
        cdef vector[BucketHow]* buckets = &self._buckets[s]
        cdef int64_t latest = buckets[0][0].first
        cdef size_t k
        for k in range(1, buckets.size()):
            if buckets[0][k].first > latest:
                latest = buckets[0][k].first
        return latest

    cdef int _forget_viewer(self, int32_t s) except -1:
        self._unlink(s)
        cdef PyObject* user = self._users[s]
        PyDict_DelItem(self._slot_of, <object>user)
        Py_DECREF(<object>user)
        self._users[s] = NULL
        self._buckets[s].clear()
        self._free.push_back(s)
        self._viewer_count -= 1
        return 0

    def viewer_buckets(self, str user):
        cdef PyObject* found = PyDict_GetItem(self._slot_of, user)
        if found == NULL:
            return {}
        cdef int32_t s = <int32_t><object>found
        return {b.first: b.second for b in self._buckets[s]}

    def seen_count(self):
        return self._arrivals.size()

    def viewer_count(self):
        return self._viewer_count

    # -- as data -------------------------------------------------------------------------------------

    def to_state(self):
        # Copied first, with a reference to each string, before any Python object is made: making one may run the
        # collector, and through it Python code that changes this window (a finalizer, a callback, another thread).
        cdef vector[Arrival] arrivals = vector[Arrival](self._arrivals.begin(), self._arrivals.end())
        cdef vector[pair[int64_t, int64_t]] traffic = vector[pair[int64_t, int64_t]](
            self._traffic.begin(), self._traffic.end()
        )
        cdef vector[PyObject*] users
        cdef vector[vector[BucketHow]] buckets
        cdef int32_t s = self._head
        while s != NONE:
            users.push_back(self._users[s])
            buckets.push_back(self._buckets[s])
            s = self._next[s]
        cdef size_t k
        for k in range(arrivals.size()):
            Py_INCREF(<object>arrivals[k].id)
        for k in range(users.size()):
            Py_INCREF(<object>users[k])
        try:
            seen = [[<object>arrivals[k].id, arrivals[k].ts] for k in range(arrivals.size())]
            viewers = [
                [<object>users[k], [[b.first, b.second] for b in buckets[k]]] for k in range(users.size())
            ]
            return {"seen": seen, "traffic": [[p.first, p.second] for p in traffic], "viewers": viewers}
        finally:
            for k in range(arrivals.size()):
                Py_DECREF(<object>arrivals[k].id)
            for k in range(users.size()):
                Py_DECREF(<object>users[k])

    @classmethod
    def from_state(cls, data):
        try:
            return cls._from_state(data)
        except OverflowError as e:  # a number beyond the tables' (int64; a mark 0-255): bad data, as any other
            raise ValueError(f"a comment window holds a number out of range: {e}") from None

    @classmethod
    def _from_state(cls, data):
        cdef CommentWindow window = cls()
        cdef int32_t s
        for event_id, ts in data.get("seen", ()):
            event_id = str(event_id)
            if not PyDict_Contains(window._ids, event_id):
                window._remember_id(event_id, int(ts))
        for b, n in data.get("traffic", ()):
            window._traffic[int(b)] = int(n)
        for user, buckets in data.get("viewers", ()):
            user = str(user)
            if PyDict_Contains(window._slot_of, user):
                continue
            s = window._new_slot(user)
            for b, how in buckets:  # a bucket repeated: the last marks, at the first's place (as a dict reads it)
                window._mark(s, int(b), int(how), False)
        return window

    def __eq__(self, other):
        from detectors.comment_window import PyCommentWindow, comparable

        if not isinstance(other, (CommentWindow, PyCommentWindow)):
            return NotImplemented
        return comparable(self) == comparable(other)

    def __deepcopy__(self, memo):
        return type(self).from_state(self.to_state())

    def __reduce__(self):
        return (type(self).from_state, (self.to_state(),))

    def __sizeof__(self):
        """The object, its containers and the strings only it holds (ids, users): what a deep getsizeof walk counts
        for the reference's dicts."""
        cdef size_t total = object.__sizeof__(self) + sys.getsizeof(self._ids) + sys.getsizeof(self._slot_of)
        total += self._arrivals.size() * sizeof(Arrival) + self._traffic.size() * 48
        total += self._users.capacity() * (sizeof(PyObject*) + sizeof(vector[BucketHow]) + 3 * sizeof(int32_t))
        for event_id in self._ids:
            total += sys.getsizeof(event_id)
        for user in self._slot_of:
            total += sys.getsizeof(user)
        cdef size_t k
        for k in range(self._buckets.size()):
            total += self._buckets[k].capacity() * sizeof(BucketHow)
        return total

    def __repr__(self):
        return (
            f"CommentWindow({self.seen_count()} ids, {self._traffic.size()} buckets, {self.viewer_count()} viewers)"
        )
