"""elevator_rbtree: Jens Axboe's tree-sorted deadline I/O scheduler (2.5.46-mm2 .. 2.5.49-mm1,
mainline in 2.5.58), as elevators registered through the block layer (docs/elevator_rbtree.md)."""
