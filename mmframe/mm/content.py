"""What a physical page holds, at the granularity programs write it.

The common case is compact: ``Memory.tag[pfn]``, a 64-bit signed tag standing for the whole page
(its bytes are the tag's eight little-endian bytes repeated 512 times), with an optional zeroed tail
(``Memory.zero_tail[pfn]``: the offset past end of file from which ``readpage`` zeroed the page).
A page written partially (a few bytes by ``write(2)``, ``pread`` into the middle of a buffer, a
``store``) gets a fine representation: ``Memory.fine[pfn]``, a ``bytearray(4096)`` that, when
present, is the page's content (the tag and tail are then ignored).  A 512-byte sector of either is
``read_bytes(vm, pfn, s * 512, 512)`` / ``write_bytes(vm, pfn, s * 512, data)``.

The device's sectors are converted to and from pages in one place, :mod:`mmframe.block.content`,
with these primitives.  A content value is an ``int`` (a whole tag), a ``(tag, tail)`` pair, or
``bytes`` of the page's 4096 bytes.

Costs are not charged here: callers charge the copy (``copy_page``) or the clear they model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Union

from mmframe.mm.page import PAGE_SIZE

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.mm.memory import Memory

Content = Union[int, tuple, bytes]
SECTOR_SIZE = 512
_ZERO = bytes(PAGE_SIZE)


def tag_bytes(tag: int, tail: int | None = None) -> bytes:
    """The 4096 bytes a whole-page tag stands for, zero from ``tail`` on."""
    b = tag.to_bytes(8, "little", signed=True) * (PAGE_SIZE // 8)
    return b if tail is None else b[:tail] + bytes(PAGE_SIZE - tail)


def as_tag(data: bytes) -> int | None:
    """The tag whose pattern ``data`` (a whole page) is, or None (O(page))."""
    head = data[:8]
    return int.from_bytes(head, "little", signed=True) if head * (PAGE_SIZE // 8) == data else None


def page_bytes(vm: Memory, pfn: int) -> bytes:
    fine = vm.fine.get(pfn) if vm.fine else None
    if fine is not None:
        return bytes(fine)
    return tag_bytes(vm.tag[pfn], vm.zero_tail.get(pfn) if vm.zero_tail else None)


def read_bytes(vm: Memory, pfn: int, off: int, n: int) -> bytes:
    """``n`` bytes of the page from ``off`` (within the page)."""
    fine = vm.fine.get(pfn) if vm.fine else None
    if fine is not None:
        return bytes(fine[off:off + n])
    return tag_bytes(vm.tag[pfn], vm.zero_tail.get(pfn) if vm.zero_tail else None)[off:off + n]


def load_word(vm: Memory, pfn: int, off: int) -> int:
    """The signed 64-bit little-endian word holding byte ``off`` (a user ``read``): the page's tag,
    unless its zeroed tail or a fine representation covers it.  O(1)."""
    off &= PAGE_SIZE - 8
    fine = vm.fine.get(pfn) if vm.fine else None
    if fine is not None:
        return int.from_bytes(fine[off:off + 8], "little", signed=True)
    tail = vm.zero_tail.get(pfn) if vm.zero_tail else None
    if tail is None or off + 8 <= tail:
        return vm.tag[pfn]
    if off >= tail:
        return 0
    return int.from_bytes(tag_bytes(vm.tag[pfn])[off:tail] + bytes(off + 8 - tail), "little", signed=True)


def set_tag(vm: Memory, pfn: int, tag: int) -> None:
    """The whole page becomes ``tag`` (a store of a page's tag, a clear with 0)."""
    vm.tag[pfn] = tag
    if vm.zero_tail:
        vm.zero_tail.pop(pfn, None)
    if vm.fine:
        vm.fine.pop(pfn, None)


def write_bytes(vm: Memory, pfn: int, off: int, data: bytes) -> None:
    """Store ``data`` at ``off`` in the page; the rest is unchanged.  A write that leaves the page
    a whole tag's pattern makes it compact again."""
    n = len(data)
    if not n:
        return
    if n == PAGE_SIZE:
        whole = bytearray(data)
    else:
        whole = vm.fine.get(pfn)
        if whole is None:
            whole = bytearray(page_bytes(vm, pfn))
        whole[off:off + n] = data
    c = compact(whole)
    if c is not None:
        block_to_page(vm, pfn, c)
        return
    vm.fine[pfn] = whole
    if vm.zero_tail:
        vm.zero_tail.pop(pfn, None)


def compact(data: bytes | bytearray) -> int | tuple | None:
    """``data`` (a whole page) as a tag, or a tag with a zeroed tail, if it is one; else None.
    O(page)."""
    tag = as_tag(data)
    if tag is not None:
        return tag
    t = len(data.rstrip(b"\0"))
    pattern = data[:8] * (PAGE_SIZE // 8)
    return (int.from_bytes(data[:8], "little", signed=True), t) if data[:t] == pattern[:t] else None


def zero_from(vm: Memory, pfn: int, off: int) -> None:
    """Bytes from ``off`` on read zero (``readpage``/``block_truncate_page`` past end of file);
    zeroes already there stay."""
    fine = vm.fine.get(pfn) if vm.fine else None
    if fine is not None:
        fine[off:] = bytes(PAGE_SIZE - off)
        return
    tails = vm.zero_tail
    tails[pfn] = min(tails.get(pfn, PAGE_SIZE), off)


def copy_page(vm: Memory, old: int, new: int) -> None:
    """``copy_highpage``: ``new`` holds what ``old`` holds."""
    vm.tag[new] = vm.tag[old]
    tails, fine = vm.zero_tail, vm.fine
    tail = tails.get(old) if tails else None
    if tail is not None:
        tails[new] = tail
    elif tails:
        tails.pop(new, None)
    f = fine.get(old) if fine else None
    if f is not None:
        fine[new] = bytearray(f)
    elif fine:
        fine.pop(new, None)


def forget(vm: Memory, pfn: int) -> None:
    """A freed page's content marks go with it."""
    if vm.zero_tail:
        vm.zero_tail.pop(pfn, None)
    if vm.fine:
        vm.fine.pop(pfn, None)


# --- compact content values (a block of the device holds these: mmframe.block.content) ---------
def page_to_block(vm: Memory, pfn: int) -> Content:
    """What a block written from page ``pfn`` holds (a tag, ``(tag, tail)``, or bytes)."""
    fine = vm.fine.get(pfn) if vm.fine else None
    if fine is not None:
        return bytes(fine)
    tail = vm.zero_tail.get(pfn) if vm.zero_tail else None
    return int(vm.tag[pfn]) if tail is None else (int(vm.tag[pfn]), tail)


def block_to_page(vm: Memory, pfn: int, c: Content) -> None:
    """Page ``pfn`` holds the content value ``c`` (a tag, ``(tag, tail)``, or bytes)."""
    if type(c) is int:
        set_tag(vm, pfn, c)
    elif type(c) is tuple:
        set_tag(vm, pfn, c[0])
        vm.zero_tail[pfn] = c[1]
    else:
        set_tag(vm, pfn, 0)
        vm.fine[pfn] = bytearray(c)


def block_bytes(c: Content) -> bytes:
    """The 4096 bytes of a block's content (for sector-granular readers)."""
    if type(c) is int:
        return tag_bytes(c)
    if type(c) is tuple:
        return tag_bytes(c[0], c[1])
    return bytes(c)
