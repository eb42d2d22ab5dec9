"""ftbridge driver for vCenter (pyVmomi), and a vcsim-based lab that does Fault Tolerance.

Importing this package (or :mod:`ftbridge_vsphere.driver`) imports no SDK: pyVmomi is loaded by
:mod:`ftbridge_vsphere.client` when an endpoint is opened.
"""

import logging

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__: list[str] = []
