"""The sim driver and its fault-injection helpers; see :mod:`ftbridge.sim.driver`."""
