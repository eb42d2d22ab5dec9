"""ftbridge: keep fault-tolerant VMs' files where they survive failures.

The core knows no hypervisor. Drivers plug in through the ``ftbridge.drivers``
entry-point group; see :mod:`ftbridge.drivers`.
"""

import logging

__version__ = "0.1.0"

# A library never configures logging; the CLI does.
logging.getLogger(__name__).addHandler(logging.NullHandler())
