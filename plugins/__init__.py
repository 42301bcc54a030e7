"""Shipped policy plugins, importable as ``mmframe_plugins.<name>`` and registered through the
``mmframe`` entry-point group exactly as third-party plugins are.  None is enabled unless a run
enables it."""
