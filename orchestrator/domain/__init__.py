"""Pure decisions: stdlib only, no I/O; every time-dependent function takes ``now``."""
