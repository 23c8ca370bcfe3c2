"""Use cases: load rows, ask the domain, save, record events. The caller's Database commits."""
