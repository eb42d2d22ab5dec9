"""Continuous protection: ``ftbridge watch`` (see :mod:`.controller`), its failure detector
(:mod:`.detect`) and its Prometheus metrics (:mod:`.metrics`)."""
