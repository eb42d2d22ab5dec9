"""ftbridge driver for Proxmox VE 8 and 9, and its lab peer (:mod:`ftbridge_proxmox.lab`).

Importing this package imports no SDK: only :mod:`ftbridge_proxmox.client` loads proxmoxer
and requests, and only when a driver is opened.
"""

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
