"""The pure core: plain data, state machines, matching. No I/O, no clocks, no ids made here."""
