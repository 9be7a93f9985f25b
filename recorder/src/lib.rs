//! Capture: the process launcher, the native protocol, the allocation-server compatibility listener, importers.
