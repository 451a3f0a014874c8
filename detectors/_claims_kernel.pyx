# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""The claims model's hot path compiled: one head's class probabilities for one normalised text (``HeadKernel``),
where a head's known features are in it (``HeadKernel.located``, for an explanation), and the clause breaker's
log-odds at each gap of an unpunctuated run (``GapKernel``).

Does what ``KnownFeatures.find`` + ``Head.proba_of_rows`` do in ``claims_model.py`` (the reference, used
when this module is not built, and tested to agree): finds the head's known character n-grams (n ≤ 3, digits
masked as "#") and pinyin pairs in the text, adds each distinct row's weights once, and returns the softmax.
Why compiled: the Python path builds a keyed string, a tuple per automaton match and a set per text — about
two thirds of the detector's cost per utterance (docs/claims.md, "Speed").

Keys: an n-gram's code points packed 21 bits each (a normalised text never holds code point 0, so grams
of different length never share a key); a pinyin pair sets the top bit and packs the two syllables' ids.
"""

cimport cython
from cpython.pythread cimport (
    NOWAIT_LOCK, WAIT_LOCK, PyThread_acquire_lock, PyThread_allocate_lock, PyThread_free_lock, PyThread_release_lock,
    PyThread_type_lock,
)
from cython.operator cimport dereference as deref
from libc.math cimport exp, sqrt
from libc.stdint cimport int32_t, uint64_t
from libcpp.unordered_map cimport unordered_map
from libcpp.vector cimport vector

import numpy as np

cdef uint64_t PINYIN_BIT = (<uint64_t>1) << 63
#: characters below this code point have their syllable id cached in an array (CJK blocks end at U+9FFF)
DEF TABLE_SIZE = 0xA000
DEF UNKNOWN = -2
DEF NO_SYLLABLE = -1


cpdef uint64_t gram_key(str gram):
    """The key of an n-gram (1 ≤ len ≤ 3) as the kernel packs it."""
    cdef uint64_t key = 0
    cdef int k
    for k in range(len(gram)):
        key |= (<uint64_t>ord(gram[k])) << (21 * k)
    return key


cpdef uint64_t pair_key(int32_t first, int32_t second):
    """The key of a pinyin pair of two syllable ids."""
    return PINYIN_BIT | ((<uint64_t>first) << 21) | (<uint64_t>second)


cdef inline uint64_t _pair_key(int32_t first, int32_t second) noexcept nogil:
    return PINYIN_BIT | ((<uint64_t>first) << 21) | (<uint64_t>second)


cdef class Syllables:
    """Character → id of its tone-less syllable among the model's syllables (-1: none, or not Chinese),
    asked of Python once per character and cached."""

    cdef int32_t table[TABLE_SIZE]
    cdef dict ids
    cdef object syllable_of

    def __init__(self, ids: dict, syllable_of) -> None:
        self.ids = dict(ids)
        self.syllable_of = syllable_of
        cdef int i
        for i in range(TABLE_SIZE):
            self.table[i] = UNKNOWN

    cdef inline int32_t of(self, Py_UCS4 ch):
        if ch >= TABLE_SIZE:
            return NO_SYLLABLE
        cdef int32_t sid = self.table[ch]
        if sid == UNKNOWN:
            syllable = self.syllable_of(chr(ch))
            sid = self.ids.get(syllable, NO_SYLLABLE) if syllable else NO_SYLLABLE
            self.table[ch] = sid
        return sid


cdef struct KeyEntry:
    int32_t row  # the row of the n-gram or pinyin pair of this key (0: the head does not know it)
    int32_t words  # 1 + the index of the vocabulary words that start with this key's characters (0: none)


cdef struct Slot:
    uint64_t key  # 0: empty (no feature's key is 0: an n-gram has a code point above 0, a pair sets the top bit)
    KeyEntry entry


#: 2^64 / golden ratio: a key times it, top bits taken, spreads packed code points (which differ in few bits) over
#: the table (Fibonacci hashing)
cdef uint64_t GOLDEN = 0x9E3779B97F4A7C15


@cython.final  # no subclass: the helpers below are called directly, not through a method table
cdef class HeadKernel:
    """One head: keys → rows, the rows' class weights and idf² side by side, the intercepts; and the vocabulary
    words the head knows, found from the same keys (``proba``)."""

    # The keys in an open-addressing table (linear probing, at most half full), built once: a look-up is one memory
    # access where ``unordered_map`` made three dependent ones (bucket, the node before, the node), and on a host's
    # utterance between viewers' comments those accesses miss the cache — the kernel's time in the embedded runtime
    # was most of all theirs (stop 49).
    cdef vector[Slot] table
    cdef int shift
    cdef uint64_t mask
    cdef vector[vector[int32_t]] starting  # per key's ``words``: the ids of the words starting so
    cdef vector[vector[Py_UCS4]] word_chars  # per word id: its characters
    cdef vector[vector[int32_t]] word_rows  # per word id: its rows (the word's, its class's)
    cdef double[:, ::1] gathered
    cdef double[::1] intercept
    cdef int32_t[::1] stamp
    cdef int32_t generation
    cdef Syllables syllables
    cdef int max_n
    cdef bint has_pinyin
    cdef vector[int32_t] length_rows  # the length feature's row by bucket (0: the head has none)
    cdef int length_bucket
    # ``proba`` keeps scratch marks across a call that may call back into Python (a character's syllable, the first
    # time it is seen) and so let another thread in: a worker checks a reloaded ruleset's examples in a thread, with
    # this very model (``load_model`` is cached by the file's bytes) while its loop decides. A C lock, taken here: a
    # Python one around each call cost a context manager's two calls on every read.
    cdef PyThread_type_lock lock

    def __cinit__(self):
        self.lock = PyThread_allocate_lock()
        if self.lock == NULL:
            raise MemoryError("no lock for a claims kernel")

    def __dealloc__(self):
        if self.lock != NULL:
            PyThread_free_lock(self.lock)
    cdef object _keep  # the arrays behind the memoryviews

    def __init__(
        self,
        keyed_rows: dict,
        gathered,
        intercept,
        Syllables syllables,
        int max_n,
        words: dict = None,
        length_rows=(),
        int length_bucket=1,
    ) -> None:
        """``words``: vocabulary word → its rows in this head (the word's, its class's); each is keyed by its first
        ``max_n`` characters (digits masked, as an n-gram) and compared whole where that key is found.
        ``length_rows``: the length feature's row for each bucket of ``length_bucket`` characters (0: none; a
        text's bucket is its length // length_bucket, at most the last)."""
        if length_bucket < 1:
            raise ValueError("a length bucket of less than one character")
        cdef int32_t length_row
        for value in length_rows:
            length_row = 0 if value is None else value
            self.length_rows.push_back(length_row)
        self.length_bucket = length_bucket
        cdef uint64_t key
        cdef KeyEntry entry
        cdef vector[Py_UCS4] chars
        cdef vector[int32_t] word_rows
        cdef Py_UCS4 ch, masked
        cdef unordered_map[uint64_t, KeyEntry] keyed  # gathered here, then laid out in ``table``
        for key, row in keyed_rows.items():
            if key == 0:
                raise ValueError("a feature key of 0")
            entry.row, entry.words = row, 0
            keyed[key] = entry
            if key & PINYIN_BIT:
                self.has_pinyin = True
        for word, rows in (words or {}).items():
            if not word or not rows:
                continue
            chars.clear()
            word_rows.clear()
            key = 0
            for k, ch in enumerate(word):
                chars.push_back(ch)
                if k < max_n:
                    masked = u"#" if u"0" <= ch <= u"9" else ch
                    key |= (<uint64_t>masked) << (21 * k)
            if key == 0:
                raise ValueError(f"a vocabulary word starting with U+0000: {word!r}")
            for row in rows:
                word_rows.push_back(row)
            entry = keyed[key] if keyed.count(key) else KeyEntry(0, 0)
            if entry.words == 0:
                self.starting.push_back(vector[int32_t]())
                entry.words = <int32_t>self.starting.size()
                keyed[key] = entry
            self.starting[entry.words - 1].push_back(<int32_t>self.word_chars.size())
            self.word_chars.push_back(chars)
            self.word_rows.push_back(word_rows)
        self._lay_out(keyed)
        table = np.ascontiguousarray(gathered, dtype=np.float64)
        bias = np.ascontiguousarray(intercept, dtype=np.float64)
        marks = np.zeros(table.shape[0], dtype=np.int32)
        self._keep = (table, bias, marks)
        self.gathered, self.intercept, self.stamp = table, bias, marks
        self.generation = 0
        self.syllables = syllables
        self.max_n = max_n

    cdef void _lay_out(self, unordered_map[uint64_t, KeyEntry]& keyed):
        cdef size_t size = 16
        cdef int bits = 4
        cdef uint64_t i
        while size < 2 * keyed.size():
            size <<= 1
            bits += 1
        cdef Slot empty
        empty.key, empty.entry.row, empty.entry.words = 0, 0, 0
        self.table.assign(size, empty)
        self.shift, self.mask = 64 - bits, size - 1
        for p in keyed:
            i = (p.first * GOLDEN) >> self.shift
            while self.table[i].key != 0:
                i = (i + 1) & self.mask
            self.table[i].key = p.first
            self.table[i].entry = p.second

    cdef inline const KeyEntry* _find(self, uint64_t key) noexcept nogil:
        """The entry of ``key``, or NULL (a key of 0 finds an empty slot's entry: no row, no words)."""
        cdef uint64_t i = (key * GOLDEN) >> self.shift
        cdef const Slot* slot
        while True:
            slot = &self.table[i]
            if slot.key == key:
                return &slot.entry
            if slot.key == 0:
                return NULL
            i = (i + 1) & self.mask

    cdef inline bint _add_row(self, int32_t row, int32_t gen, double* acc, Py_ssize_t width):
        """Add a row's weights once per text (the generation stamp says whether it was added already)."""
        if self.stamp[row] == gen:
            return False
        self.stamp[row] = gen
        cdef Py_ssize_t k
        for k in range(width):
            acc[k] += self.gathered[row, k]
        return True

    cdef inline bint _add_key(self, uint64_t key, int32_t gen, double* acc, Py_ssize_t width):
        """Add the row of a pinyin pair's key, if the head knows it."""
        cdef const KeyEntry* found = self._find(key)
        if found == NULL or found.row == 0:
            return False
        return self._add_row(found.row, gen, acc, width)

    cdef bint _add_words(self, str text, Py_ssize_t n, Py_ssize_t i, int32_t words, int32_t gen, double* acc,
                         Py_ssize_t width):
        """Add the rows of each word of list ``words`` that ``text`` holds at ``i`` (their keys matched there)."""
        cdef bint added = False
        cdef int32_t w, row
        cdef Py_ssize_t j, length
        for w in self.starting[words - 1]:
            length = <Py_ssize_t>self.word_chars[w].size()
            if i + length > n:
                continue
            j = 0
            while j < length and <Py_UCS4>text[i + j] == self.word_chars[w][j]:
                j += 1
            if j == length:
                for row in self.word_rows[w]:
                    added |= self._add_row(row, gen, acc, width)
        return added

    def proba(self, str text, extra_rows=()) -> list:
        """Class probabilities of ``text`` (normalised): its n-grams, vocabulary words, pinyin pairs and length
        bucket the head knows, with ``extra_rows`` counted as present too."""
        if not PyThread_acquire_lock(self.lock, NOWAIT_LOCK):
            with nogil:  # another thread is in a call: wait without holding the interpreter it may need
                PyThread_acquire_lock(self.lock, WAIT_LOCK)
        try:
            return self._proba(text, extra_rows)
        finally:
            PyThread_release_lock(self.lock)

    cdef list _proba(self, str text, extra_rows):
        cdef Py_ssize_t n = len(text), i, k, m
        cdef Py_ssize_t width = self.gathered.shape[1]
        cdef Py_ssize_t classes = width - 1
        cdef double acc[16]
        cdef uint64_t key
        cdef int32_t row, a, b
        cdef Py_UCS4 ch
        cdef const KeyEntry* found
        if width > 16:
            raise ValueError("more classes than the kernel holds")
        for k in range(width):
            acc[k] = 0.0
        self.generation += 1
        if self.generation == 2147483647:
            self.stamp[:] = 0
            self.generation = 1
        cdef int32_t gen = self.generation
        cdef bint any_row = False

        for i in range(n):
            key = 0
            m = n - i if n - i < self.max_n else self.max_n
            for k in range(m):
                ch = text[i + k]
                if ch >= u"0" and ch <= u"9":
                    ch = u"#"
                key |= (<uint64_t>ch) << (21 * k)
                found = self._find(key)
                if found != NULL:
                    if found.row:
                        any_row |= self._add_row(found.row, gen, acc, width)
                    if found.words:
                        any_row |= self._add_words(text, n, i, found.words, gen, acc, width)
        if self.has_pinyin and n > 1:
            b = self.syllables.of(text[0])
            for i in range(1, n):
                a = b
                b = self.syllables.of(text[i])
                if a >= 0 and b >= 0:
                    any_row |= self._add_key(_pair_key(a, b), gen, acc, width)
        if not self.length_rows.empty():
            k = n // self.length_bucket
            row = self.length_rows[k if k < <Py_ssize_t>self.length_rows.size() else self.length_rows.size() - 1]
            if row > 0:
                any_row |= self._add_row(row, gen, acc, width)
        for extra in extra_rows:
            row = extra
            if row > 0:
                any_row |= self._add_row(row, gen, acc, width)

        cdef double z[16]
        cdef double scale = 0.0, top, total = 0.0
        if any_row:
            scale = 1.0 / sqrt(acc[classes])
        for k in range(classes):
            z[k] = self.intercept[k] + acc[k] * scale
        top = z[0]
        for k in range(1, classes):
            if z[k] > top:
                top = z[k]
        for k in range(classes):
            z[k] = exp(z[k] - top)
            total += z[k]
        return [z[k] / total for k in range(classes)]

    def located(self, str text) -> list:
        """(row, start, end) of each occurrence in ``text`` of an n-gram (by length, then position) and a pinyin
        pair (by position) the head knows — ``Featurizer.located``'s order, unknown ones left out: what an
        explanation weighs, without a string and a dictionary look-up per n-gram. Touches no scratch marks."""
        cdef Py_ssize_t n = len(text), i, k, length
        cdef uint64_t key
        cdef int32_t a, b
        cdef Py_UCS4 ch
        cdef const KeyEntry* found
        out = []
        for length in range(1, self.max_n + 1):
            for i in range(n - length + 1):
                key = 0
                for k in range(length):
                    ch = text[i + k]
                    if ch >= u"0" and ch <= u"9":
                        ch = u"#"
                    key |= (<uint64_t>ch) << (21 * k)
                found = self._find(key)
                if found != NULL and found.row:
                    out.append((found.row, i, i + length))
        if self.has_pinyin and n > 1:
            b = self.syllables.of(text[0])
            for i in range(1, n):
                a = b
                b = self.syllables.of(text[i])
                if a >= 0 and b >= 0:
                    found = self._find(_pair_key(a, b))
                    if found != NULL and found.row:
                        out.append((found.row, i - 1, i + 1))
        return out


@cython.final
cdef class GapKernel:
    """The clause breaker's log-odds of a clause end at each gap of a normalised text: what
    ``ClauseBreaker.logits_in_python`` in claims_model.py computes (the reference, tested to agree) without a string slice
    and a dictionary look-up per feature of each gap. The text is read as padded with ``pad`` "<" before it and
    ``pad`` ">" after it, its digits as "#"; each kind of feature is the span [lo, hi) around the gap, keyed as
    ``gram_key`` packs it."""

    cdef vector[unordered_map[uint64_t, double]] weights
    cdef vector[int] lo
    cdef vector[int] hi
    cdef double intercept
    cdef int pad

    def __init__(self, list spans, list weights, double intercept, int pad) -> None:
        cdef unordered_map[uint64_t, double] kind
        cdef uint64_t key
        for (lo, hi), keyed in zip(spans, weights):
            if not 0 < hi - lo <= 3 or -lo > pad or hi > pad + 1:
                raise ValueError(f"a gap feature's span {lo, hi} is out of the kernel's range")
            self.lo.push_back(lo)
            self.hi.push_back(hi)
            kind.clear()
            for key, w in keyed.items():
                kind[key] = w
            self.weights.push_back(kind)
        self.intercept = intercept
        self.pad = pad

    def logits(self, str text) -> list:
        """Item i-1: the log-odds of a clause end in the gap before text[i]."""
        cdef Py_ssize_t n = len(text), j, t, pad = self.pad
        cdef size_t k, kinds = self.weights.size()
        cdef uint64_t key
        cdef double z
        cdef Py_UCS4 ch
        cdef unordered_map[uint64_t, double].iterator found
        cdef vector[uint64_t] padded  # the padded, digit-masked text's code points
        padded.reserve(n + 2 * pad)
        for j in range(pad):
            padded.push_back(60)  # "<"
        for ch in text:
            if ch >= u"0" and ch <= u"9":
                ch = u"#"
            padded.push_back(<uint64_t>ch)
        for j in range(pad):
            padded.push_back(62)  # ">"
        out = [0.0] * (n - 1 if n > 1 else 0)
        for j in range(pad + 1, pad + n):
            z = self.intercept
            for k in range(kinds):
                key = 0
                for t in range(self.lo[k], self.hi[k]):
                    key |= padded[j + t] << (21 * (t - self.lo[k]))
                found = self.weights[k].find(key)
                if found != self.weights[k].end():
                    z += deref(found).second
            out[j - pad - 1] = z
        return out
