"""Use cases: each loads state, asks a pure decision, acts through the client, saves, logs."""
