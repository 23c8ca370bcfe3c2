"""RQ entry points, the event relay and the scheduler setup."""
