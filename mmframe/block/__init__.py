"""The block layer.  Until the queue, elevators and disk model land, a file system sits on the
stand-in device of :mod:`mmframe.block.ramdisk`, which has the interface they will keep."""
