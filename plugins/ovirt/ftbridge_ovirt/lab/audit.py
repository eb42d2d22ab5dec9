"""The engine's audit log as the lab writes it: one event per command it executes.

``CommandBase.logCommand`` (ovirt-engine ``backend/manager/modules/bll/.../bll/CommandBase.java``)
logs every command that is not internal once it has executed, under the audit type its
``getAuditLogTypeValue()`` names, and ``AuditLogable.createAuditLog`` (dal
``dbbroker/auditloghandling/AuditLogable.java``) copies the command's correlation id into the
entry. The REST API shows the entry as an ``<event>`` with that ``correlation_id`` and links to
the VM, host and storage domain it names (restapi types ``EventMapper.java``).

The codes and messages below are the engine's own (common ``AuditLogType.java``, dal
``bundles/AuditLogMessages.properties``), for the commands the lab runs; ``${UserName}`` is the
caller as the engine writes it (``admin@internal-authz``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

#: audit type -> (code, message) of the commands the lab executes
AUDIT_TYPES: dict[str, tuple[int, str]] = {
    "USER_MOVED_DISK": (2008, "User ${UserName} moving disk ${DiskAlias} to domain ${StorageDomainName}."),
    "USER_COPIED_DISK": (2004, "User ${UserName} is copying disk ${DiskAlias} to domain ${StorageDomainName}."),
    "USER_FINISHED_REMOVE_DISK": (
        2014,
        "Disk ${DiskAlias} was successfully removed from domain ${StorageDomainName} (User ${UserName}).",
    ),
    "USER_UPDATE_DISK": (86, "Disk ${DiskAlias} was updated by ${UserName}."),
    "USER_UPDATE_VM_DISK": (88, "VM ${VmName} ${DiskAlias} disk was updated by ${UserName}."),
    "USER_ADD_VM": (34, "VM ${VmName} was created by ${UserName}."),
    "USER_ADD_VM_STARTED": (37, "VM ${VmName} creation was initiated by ${UserName}."),
    "USER_REMOVE_VM_FINISHED": (113, "VM ${VmName} was successfully removed by ${UserName}."),
    "USER_UPDATE_VM": (35, "VM ${VmName} configuration was updated by ${UserName}."),
    "USER_INITIATED_RUN_VM": (150, "Starting VM ${VmName} was initiated by ${UserName}."),
    "USER_STOP_VM": (33, "VM ${VmName} powered off by ${UserName} (Host: ${VdsName})${OptionalReason}."),
    "USER_ATTACH_DISK_TO_VM": (2016, "Disk ${DiskAlias} was successfully attached to VM ${VmName} by ${UserName}."),
    "USER_DETACH_DISK_FROM_VM": (
        2018,
        "Disk ${DiskAlias} was successfully detached from VM ${VmName} by ${UserName}.",
    ),
    "NETWORK_ADD_VM_INTERFACE": (
        932,
        "Interface ${InterfaceName} (${InterfaceType}) was added to VM ${VmName}. (User: ${UserName})",
    ),
    "USER_CREATE_SNAPSHOT": (
        45,
        "Snapshot '${SnapshotName}' creation for VM '${VmName}' was initiated by ${UserName}.",
    ),
    "USER_REMOVE_SNAPSHOT": (
        342,
        "Snapshot '${SnapshotName}' deletion for VM '${VmName}' was initiated by ${UserName}.",
    ),
    "VDS_MANUAL_FENCE_STATUS": (494, "Manual fence for host ${VdsName} was started."),
    "USER_VDS_STOP": (21, "Host ${VdsName} was stopped by ${UserName}."),
    "USER_VDS_RESTART": (41, "Host ${VdsName} was restarted by ${UserName}."),
    "USER_ADD_STORAGE_DOMAIN": (956, "Storage Domain ${StorageDomainName} was added by ${UserName}"),
    "USER_ATTACH_STORAGE_DOMAIN_TO_POOL": (
        962,
        "Storage Domain ${StorageDomainName} was attached to Data Center ${StoragePoolName} by ${UserName}",
    ),
    "USER_DEACTIVATED_STORAGE_DOMAIN": (
        968,
        "Storage Domain ${StorageDomainName} (Data Center ${StoragePoolName}) was deactivated and has moved to "
        "'Preparing for maintenance' until it will no longer be accessed by any Host of the Data Center.",
    ),
    "USER_DETACH_STORAGE_DOMAIN_FROM_POOL": (
        964,
        "Storage Domain ${StorageDomainName} was detached from Data Center ${StoragePoolName} by ${UserName}",
    ),
    "USER_REMOVE_STORAGE_DOMAIN": (960, "Storage Domain ${StorageDomainName} was removed by ${UserName}"),
    "USER_FORCE_REMOVE_STORAGE_DOMAIN": (
        981,
        "Storage Domain ${StorageDomainName} was forcibly removed by ${UserName}",
    ),
    "VM_IMPORT_FROM_CONFIGURATION_EXECUTED_SUCCESSFULLY": (
        174,
        "VM ${VmName} has been successfully imported from the given configuration.",
    ),
    "TEMPLATE_IMPORT_FROM_CONFIGURATION_SUCCESS": (
        180,
        "Template ${VmTemplateName} has been successfully imported from the given configuration.",
    ),
}

_VAR = re.compile(r"\$\{(\w+)\}")

#: an audit entry a command asks for: its type and the values its message names
Audit = tuple[str, Mapping[str, str]]


def render(audit: Audit, user: str) -> tuple[int, str]:
    """The code and message of an audit entry (a value the message names and the caller did not
    give is left empty)."""
    kind, values = audit
    code, template = AUDIT_TYPES[kind]
    given = {"UserName": user, **values}
    return code, _VAR.sub(lambda m: given.get(m.group(1), ""), template)
