# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""``normalize``'s work on a text not seen before, compiled: what ``_normalize`` in ``normalize.py`` does (the
reference, which tests/test_normalize.py holds this to on every character and on real streams), over code points
in C++ vectors instead of a Python string per character.

The same steps in the same order: the fast path for a text already folded; else each character's fold (NFKC + lower
case, invisible characters and inserted symbols dropped: asked of ``fold``, the reference's own function, once per
character and remembered) with its origin; "." kept only between two digits; traditional to simplified Chinese
(``convert``, per character when a phrase changes the length); runs of three or more of one character that is not a
digit collapsed to one. Why: a text's normalisation was 12 % of the embedded runtime's instructions per event
(stop 48), most of it a string object made, hashed and looked up per character.
"""

from cpython.object cimport PyObject_GenericSetAttr
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from cpython.ref cimport Py_INCREF
from libcpp.unordered_map cimport unordered_map
from libcpp.vector cimport vector
from cython.operator cimport dereference as deref

import unicodedata

cdef extern from "Python.h":
    Py_UCS4 PyUnicode_READ_CHAR(object s, Py_ssize_t i)
    object PyUnicode_FromKindAndData(int kind, const void* buffer, Py_ssize_t size)
    int PyUnicode_4BYTE_KIND
    bint Py_UNICODE_ISDIGIT(Py_UCS4 ch)

#: characters whose fold is remembered; emptied when full, as the reference's table is (hostile input may hold any)
DEF FOLD_LIMIT = 65536
DEF MIN_RUN_TO_COLLAPSE = 3


cdef class Normalizer:
    cdef object fold, convert, make, is_normalized
    cdef unordered_map[Py_UCS4, vector[Py_UCS4]] folds

    def __init__(self, fold, convert, make):
        """``fold(ch) -> str``: one character's fold; ``convert(text) -> str``: traditional to simplified;
        ``make``: the result's class (``NormalizedText``, a frozen dataclass of raw, text and offsets)."""
        self.fold = fold
        self.convert = convert
        self.make = make
        self.is_normalized = unicodedata.is_normalized
        self.folds.clear()  # a fold function given anew: nothing remembered of another

    cdef vector[Py_UCS4]* _fold_of(self, Py_UCS4 cp) except NULL:
        cdef unordered_map[Py_UCS4, vector[Py_UCS4]].iterator it = self.folds.find(cp)
        if it != self.folds.end():
            return &deref(it).second
        if self.folds.size() >= FOLD_LIMIT:
            self.folds.clear()
        cdef str folded = self.fold(chr(cp))
        cdef vector[Py_UCS4] codes
        cdef Py_ssize_t k
        for k in range(len(folded)):
            codes.push_back(PyUnicode_READ_CHAR(folded, k))
        self.folds[cp] = codes
        return &self.folds[cp]

    cpdef normalize(self, str raw):
        cdef Py_ssize_t n = len(raw), i, k, m
        cdef vector[Py_UCS4] chars
        cdef vector[Py_ssize_t] offsets
        cdef vector[Py_UCS4]* f
        cdef size_t j
        chars.reserve(n)
        offsets.reserve(n)
        if raw.isalnum() and raw == raw.lower() and self.is_normalized("NFKC", raw):
            # most chat: letters and digits only, nothing to fold or drop
            for i in range(n):
                chars.push_back(PyUnicode_READ_CHAR(raw, i))
                offsets.push_back(i)
        else:
            for i in range(n):
                f = self._fold_of(PyUnicode_READ_CHAR(raw, i))
                for j in range(f.size()):
                    chars.push_back(deref(f)[j])
                    offsets.push_back(i)
            _keep_points_between_digits(chars, offsets)
        m = <Py_ssize_t>chars.size()
        joined = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, chars.data(), m)
        cdef str simplified = self.convert(joined)
        cdef str one
        if len(simplified) == m:
            for k in range(m):
                chars[k] = PyUnicode_READ_CHAR(simplified, k)
        else:  # a phrase conversion changed the length: convert per character to keep the offsets
            for k in range(m):
                one = self.convert(chr(chars[k]))
                if one:
                    chars[k] = PyUnicode_READ_CHAR(one, 0)
            simplified = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, chars.data(), m)
        if _collapse_runs(chars, offsets):
            simplified = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, chars.data(), <Py_ssize_t>chars.size())
        # set as the dataclass's own __init__ sets a frozen instance's fields (object.__setattr__), without the
        # Python frame that costs as much as the rest of a short text's normalisation
        result = self.make.__new__(self.make)
        PyObject_GenericSetAttr(result, "raw", raw)
        PyObject_GenericSetAttr(result, "text", simplified)
        PyObject_GenericSetAttr(result, "offsets", _as_tuple(offsets))
        return result


cdef void _keep_points_between_digits(vector[Py_UCS4]& chars, vector[Py_ssize_t]& offsets) noexcept:
    """"." only survives between two digits ("3.2"), elsewhere it is an inserted symbol (judged on the folded
    characters as they are, before any point is dropped)."""
    cdef size_t n = chars.size(), k, kept = 0
    cdef bint found = False
    for k in range(n):
        if chars[k] == 0x2E:
            found = True
            break
    if not found:
        return
    cdef vector[bint] keep
    keep.resize(n)
    for k in range(n):
        keep[k] = chars[k] != 0x2E or (
            0 < k < n - 1 and Py_UNICODE_ISDIGIT(chars[k - 1]) and Py_UNICODE_ISDIGIT(chars[k + 1])
        )
    for k in range(n):
        if keep[k]:
            chars[kept] = chars[k]
            offsets[kept] = offsets[k]
            kept += 1
    chars.resize(kept)
    offsets.resize(kept)


cdef bint _collapse_runs(vector[Py_UCS4]& chars, vector[Py_ssize_t]& offsets) noexcept:
    """Each run of MIN_RUN_TO_COLLAPSE or more of one character that is not a digit becomes its first character
    (with its origin); True if any did."""
    cdef size_t n = chars.size(), k = 0, end, kept = 0
    cdef bint changed = False
    while k < n:
        end = k + 1
        while end < n and chars[end] == chars[k]:
            end += 1
        if end - k >= MIN_RUN_TO_COLLAPSE and not Py_UNICODE_ISDIGIT(chars[k]):
            chars[kept] = chars[k]
            offsets[kept] = offsets[k]
            kept += 1
            changed = True
        else:
            while k < end:
                chars[kept] = chars[k]
                offsets[kept] = offsets[k]
                kept += 1
                k += 1
        k = end
    chars.resize(kept)
    offsets.resize(kept)
    return changed


cdef tuple _as_tuple(vector[Py_ssize_t]& offsets):
    cdef Py_ssize_t k, n = <Py_ssize_t>offsets.size()
    cdef tuple out = PyTuple_New(n)
    cdef object value
    for k in range(n):
        value = offsets[k]  # a new int (a small one shared), of which the tuple takes a reference
        Py_INCREF(value)
        PyTuple_SET_ITEM(out, k, value)
    return out


#: characters below this code point keep their value in a list (the CJK blocks end at U+9FFF); others in a dict
DEF TABLE_SIZE = 0xA000


cdef class CharJoin:
    """``"".join(map(function, text))`` for a function of one character returning a string (a syllable), each
    character's value asked once and kept: what ``normalize.pinyin_text`` does on every host utterance the claims
    lexicon reads for homophones, where a ``CharTable`` and ``map`` cost a method call per character (2 % of the
    embedded runtime's time, stop 49). Values of characters beyond the list are kept in a dict emptied when it holds
    ``limit`` (hostile input may hold any of a million characters)."""

    cdef object function
    cdef list values
    cdef dict others
    cdef Py_ssize_t limit

    def __init__(self, function, Py_ssize_t limit=65536):
        self.function = function
        self.values = [None] * TABLE_SIZE
        self.others = {}
        self.limit = limit

    def __call__(self, text):
        if type(text) is not str:  # a subclass of str, as "".join(map(...)) took it
            text = str(text)
        cdef list parts = []
        cdef Py_UCS4 ch
        cdef object value
        cdef str chars = text
        for ch in chars:
            if ch < TABLE_SIZE:
                value = self.values[<Py_ssize_t>ch]
                if value is None:
                    value = self.values[<Py_ssize_t>ch] = self._value(ch)
            else:
                value = self.others.get(<long>ch)
                if value is None:
                    if len(self.others) >= self.limit:
                        self.others.clear()
                    value = self.others[<long>ch] = self._value(ch)
            parts.append(value)
        return "".join(parts)

    cdef str _value(self, Py_UCS4 ch):
        value = self.function(chr(ch))
        if not isinstance(value, str):
            raise TypeError(f"{self.function!r} returned {type(value).__name__}, not a string")
        return value
