"""ftbridge's oVirt driver (``ftbridge-ovirt``): oVirt 4.4/4.5, RHV 4.4 and OLVM over ovirtsdk4.

Importing this package imports no SDK: only :mod:`ftbridge_ovirt.client` does, and only when
an endpoint is opened.
"""

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
