"""Failover: plan which VMs come up where from which secondary, then run, test or undo it."""
