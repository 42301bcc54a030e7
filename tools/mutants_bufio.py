"""Named mutants of buffered I/O (mmframe/mm/readahead.py, mmframe/mm/page_writeback.py); see
tools/mutants.py."""

T = "tests/test_buffered_io.py::"
MUTANTS = [
    ("bufio.eof_tail_not_zeroed_on_writeback", "mmframe/mm/page_writeback.py",
     "            fs._zero_tail(inode, index, pfn)  # block_write_full_page: zero what lies past EOF\n", "",
     (T + "test_a_store_past_eof_through_a_shared_mapping_never_reaches_the_disk_nor_reappears",), True),
    ("bufio.no_throttle", "mmframe/mm/page_writeback.py",
     "        if dirty + self.nr_writeback > async_:", "        if False:",
     (T + "test_a_writer_above_the_async_threshold_is_throttled_and_dirty_pages_stay_bounded",), False),
    ("bufio.ra_window_never_grows", "mmframe/mm/readahead.py",
     "        ra.next_size += 2\n", "        ra.next_size += 0\n",
     (T + "test_a_sequential_stream_opens_half_the_maximum_then_an_ahead_window_that_grows",), True),
    ("bufio.ra_no_ahead_window", "mmframe/mm/readahead.py",
     "        do_page_cache_readahead(fs, inode, ra.ahead_start, ra.ahead_size)\n", "",
     (T + "test_a_sequential_stream_opens_half_the_maximum_then_an_ahead_window_that_grows",), False),
    ("bufio.ra_miss_keeps_size", "mmframe/mm/readahead.py",
     "        ra.next_size -= 2\n", "        pass\n",
     (T + "test_a_random_stream_shrinks_the_window_to_the_minimum",), False),
    ("bufio.ra_failed_read_not_retried", "mmframe/mm/readahead.py",
     "    if bio.error:\n        fs.readpage(inode, index, pfn)\n", "",
     (T + "test_a_failed_readahead_is_read_again_when_needed",), False),
    ("bufio.kupdate_ignores_age", "mmframe/mm/page_writeback.py",
     "            if older_than is not None and inode.mapping.dirtied_when > older_than:",
     "            if False:",
     (T + "test_kupdate_writes_only_inodes_older_than_the_expiry",), False),
    ("bufio.no_background_writeout", "mmframe/mm/page_writeback.py",
     "        if not self.in_progress and dirty > background:", "        if False:",
     (T + "test_background_writeout_starts_above_the_background_threshold",), False),
]
