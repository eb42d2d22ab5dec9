"""A lab peer that speaks the Proxmox VE API over HTTPS, seeded from an ftbridge estate.

``python -m ftbridge_proxmox.lab --estate FILE --name ESTATE`` runs one; tests start
:class:`ProxmoxLab` in a fixture. Standard library and ``cryptography`` only.
"""

from ftbridge_proxmox.lab.peer import ProxmoxLab

__all__ = ["ProxmoxLab"]
