"""mmframe: Linux 2.5 memory and I/O policies as plugins on a simulated i386 highmem machine."""

__version__ = "0.1.0"

#: Version of the hook contract (mmframe/hookspecs.py).  Major bumps break plugins;
#: minor bumps add hooks, optional arguments or facade names (mmframe.facade, since 1.4).
HOOK_CONTRACT_VERSION = "1.15"
