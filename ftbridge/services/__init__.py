"""The core's services: inventory, audit, plan, apply, failover. They know no hypervisor."""
