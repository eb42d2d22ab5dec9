"""The only module that imports pyVmomi, and the one place its errors become ftbridge's.

pyVmomi is imported lazily (through :func:`ftbridge.drivers.require_sdk`) when an endpoint is
opened, so listing drivers or importing :mod:`ftbridge_vsphere.driver` costs nothing. The
:class:`Session` offers what the driver needs and nothing more:

* :meth:`Session.collect`: one RetrievePropertiesEx over one ContainerView, its reply read by
  :mod:`ftbridge_vsphere.wire` as it downloads (pyVmomi's deserialiser is the slow part on
  large estates), continued with ContinueRetrievePropertiesEx tokens;
* task starters that return the task's moref (the operation handle);
* :meth:`Session.task_info`, reading a task through the PropertyCollector (pyVmomi's
  WaitForTask trips on tasks whose entity is not a ManagedEntity).

:func:`translate` maps ``vim.fault.*``, ``vmodl.fault.*``, TLS and connection errors to
:mod:`ftbridge.errors` by type; callers chain with ``from``. Secrets never reach a message.
"""

from __future__ import annotations

import http.client
import io
import logging
import re
import socket
import ssl
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from ftbridge.drivers import require_sdk
from ftbridge.errors import (
    AuthenticationError,
    BackendError,
    BackendUnavailable,
    ConfigError,
    Conflict,
    FtbridgeError,
    NotFound,
    UnsupportedOperation,
)
from ftbridge.secrets import redact, remember
from ftbridge_vsphere import wire

if TYPE_CHECKING:
    from ftbridge_vsphere.config import VsphereConfig

log = logging.getLogger(__name__)

_SDK: SimpleNamespace | None = None
CERT_HINT = (
    "set ca_file to the PEM of the vCenter's CA (or of its certificate); "
    "verify_tls = false also works but lets anyone on the path read the password"
)


def sdk() -> SimpleNamespace:
    """pyVmomi's modules, imported on first use."""
    global _SDK
    if _SDK is None:
        require_sdk("pyVmomi", package="pyvmomi", driver="vsphere", hint="pip install 'pyvmomi>=8'")
        from pyVim import connect
        from pyVmomi import SoapAdapter, vim, vmodl

        _SDK = SimpleNamespace(vim=vim, vmodl=vmodl, soap=SoapAdapter, connect=connect)
    return _SDK


# --- errors ---------------------------------------------------------------------------------


def fault_message(exc: BaseException) -> str:
    """The readable text of a vSphere fault (or any exception), secrets masked."""
    msg = getattr(exc, "msg", None) or ""
    if not msg:
        parts = [getattr(m, "message", "") for m in getattr(exc, "faultMessage", None) or []]
        msg = "; ".join(p for p in parts if p)
    if not msg and not _is_fault(exc):
        msg = str(exc)
    return redact(msg or fault_name(exc))


def fault_name(exc: BaseException) -> str:
    """``InvalidState`` for ``vim.fault.InvalidState``; the class name otherwise."""
    return type(exc).__name__.rsplit(".", 1)[-1]


def _is_fault(exc: BaseException) -> bool:
    return _SDK is not None and isinstance(exc, _SDK.vmodl.MethodFault)


#: faults that mean "not in this state": the object is busy, placed wrongly, or out of room
_CONFLICTS = (
    "vim.fault.InvalidState",
    "vim.fault.ResourceInUse",
    "vim.fault.FileFault",
    "vim.fault.VmFaultToleranceIssue",
    "vim.fault.InsufficientResourcesFault",
    "vim.fault.InvalidDatastore",
    "vim.fault.MigrationFault",
    "vim.fault.VmConfigFault",
    "vim.fault.DuplicateName",
    "vim.fault.NoCompatibleHost",
    "vim.fault.InvalidPowerState",
)


def _faults(*names: str) -> tuple[type, ...]:
    """The pyVmomi classes of these fault names (those this pyVmomi knows)."""
    s = sdk()
    out = []
    for dotted in names:
        obj: Any = s
        for part in dotted.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if isinstance(obj, type):
            out.append(obj)
    return tuple(out)


def translate(exc: BaseException, *, endpoint: str, doing: str = "") -> FtbridgeError:
    """The ftbridge error for any failure of a pyVmomi call. The one translation point."""
    if isinstance(exc, FtbridgeError):
        return exc
    where = f"{doing}: " if doing else ""
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = redact(getattr(exc, "verify_message", "") or str(exc))
        return AuthenticationError(
            f"{where}the server's TLS certificate is not trusted ({reason})", hint=CERT_HINT, endpoint=endpoint
        )
    if isinstance(exc, ssl.SSLError):
        return BackendUnavailable(f"{where}TLS handshake failed: {redact(str(exc))}", endpoint=endpoint)
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return BackendUnavailable(f"{where}no reply in time", endpoint=endpoint)
    if isinstance(exc, (ConnectionError, socket.gaierror, http.client.HTTPException, OSError)):
        return BackendUnavailable(f"{where}cannot reach the server: {redact(str(exc))}", endpoint=endpoint)
    if not _is_fault(exc):
        return BackendError(f"{where}{type(exc).__name__}: {redact(str(exc))}", endpoint=endpoint)

    msg = f"{where}{fault_message(exc)}"
    name = fault_name(exc)
    if name not in msg:
        msg = f"{msg} ({name})"
    if isinstance(exc, _faults("vim.fault.InvalidLogin")):
        return AuthenticationError(f"{where}login rejected: wrong user name or password", endpoint=endpoint)
    if isinstance(exc, _faults("vim.fault.NotAuthenticated")):
        return AuthenticationError(
            f"{where}not logged in (the session expired or was closed)", endpoint=endpoint, retryable=True
        )
    if isinstance(exc, _faults("vim.fault.NoPermission")):
        priv = getattr(exc, "privilegeId", "") or "?"
        return AuthenticationError(msg, hint=f"the user lacks the privilege {priv}", endpoint=endpoint)
    if isinstance(exc, _faults("vmodl.fault.ManagedObjectNotFound", "vim.fault.NotFound", "vim.fault.FileNotFound")):
        return NotFound(msg, endpoint=endpoint)
    if isinstance(exc, _faults("vmodl.fault.HostCommunication", "vim.fault.HostConnectFault")):
        return BackendUnavailable(msg, endpoint=endpoint)
    if isinstance(exc, _faults("vim.fault.TaskInProgress")):
        return Conflict(msg, endpoint=endpoint, retryable=True)
    if isinstance(exc, _faults(*_CONFLICTS)):
        return Conflict(msg, endpoint=endpoint)
    if isinstance(exc, _faults("vmodl.fault.NotSupported", "vmodl.fault.MethodNotFound", "vmodl.fault.NotImplemented")):
        return UnsupportedOperation(
            msg, endpoint=endpoint, hint="this vCenter (or its licence) does not offer the operation"
        )
    return BackendError(msg, endpoint=endpoint)


# --- the session ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TaskInfo:
    state: str  # queued | running | success | error
    progress: float | None
    message: str = ""
    fault: str = ""  # fault type name when state == error
    retryable: bool = False
    result: Mapping[str, str] = field(default_factory=dict)


class Session:
    """One logged-in connection to a vCenter. Counts SOAP round trips (for the benchmark)."""

    def __init__(self, si: Any, endpoint: str) -> None:
        self.si = si
        self.stub = si._stub
        self.endpoint = endpoint
        self.round_trips = 0
        self.content = si.RetrieveContent()
        self.stub.requestModifierList.append(self._count)

    def _count(self, req: bytes) -> bytes:
        self.round_trips += 1
        return req

    # lifecycle ---------------------------------------------------------------------------
    def close(self) -> None:
        try:
            sdk().connect.Disconnect(self.si)
        except Exception:  # noqa: BLE001 - close never raises
            log.debug("logout failed", exc_info=True)

    def about(self) -> dict[str, str]:
        a = self.content.about
        return {"product": a.fullName, "version": a.version, "api": a.apiVersion, "build": a.build}

    # object references --------------------------------------------------------------------
    def obj(self, type_name: str, moid: str) -> Any:
        cls = getattr(sdk().vim, type_name)
        return cls(moid, self.stub)

    # reading ------------------------------------------------------------------------------
    def collect(
        self, specs: Mapping[str, Sequence[str]], *, container: tuple[str, str] | None = None
    ) -> list[wire.ObjectContent]:
        """Every object of the given types under ``container`` (default: the root folder),
        with the given property paths: CreateContainerView, RetrievePropertiesEx (+ continue
        while the server pages), DestroyView."""
        s = sdk()
        vim, vmodl = s.vim, s.vmodl
        root = self.obj(*container) if container else self.content.rootFolder
        view = self.content.viewManager.CreateContainerView(root, [getattr(vim, t) for t in specs], True)
        try:
            pc = self.content.propertyCollector
            body_args = [self.filter_specs(view, specs), vmodl.query.PropertyCollector.RetrieveOptions()]
            page = self._raw(pc, "RetrievePropertiesEx", body_args)
            objects = list(page.objects)
            while page.token:
                page = self._raw(pc, "ContinueRetrievePropertiesEx", [page.token])
                objects.extend(page.objects)
            return objects
        finally:
            try:
                view.DestroyView()
            except Exception:  # noqa: BLE001 - the answer is in; a leaked view is harmless
                log.debug("DestroyView failed", exc_info=True)

    def fetch(
        self, type_name: str, moids: Sequence[str], paths: Sequence[str], *, lean: bool = False
    ) -> list[wire.ObjectContent]:
        """These objects' properties, read by :mod:`wire` (so types newer than pyVmomi's pass).
        Objects that no longer exist come back with ``missing`` set, not as a fault
        (``reportMissingObjectsInResults``)."""
        if not moids:
            return []
        pc = self.content.propertyCollector
        args = [self.object_specs(type_name, moids, paths), sdk().vmodl.query.PropertyCollector.RetrieveOptions()]
        page = self._raw(pc, "RetrievePropertiesEx", args, lean=lean)
        objects = list(page.objects)
        while page.token:
            page = self._raw(pc, "ContinueRetrievePropertiesEx", [page.token], lean=lean)
            objects.extend(page.objects)
        return objects

    def object_specs(self, type_name: str, moids: Sequence[str], paths: Sequence[str]) -> list[Any]:
        """The FilterSpec of :meth:`fetch` (also for the raw-transfer bench)."""
        vim, vmodl = sdk().vim, sdk().vmodl
        pcq = vmodl.query.PropertyCollector
        cls = getattr(vim, type_name)
        return [
            pcq.FilterSpec(
                objectSet=[pcq.ObjectSpec(obj=cls(m, self.stub), skip=False) for m in moids],
                propSet=[pcq.PropertySpec(type=cls, all=False, pathSet=list(paths))],
                reportMissingObjectsInResults=True,
            )
        ]

    def filter_specs(self, view: Any, specs: Mapping[str, Sequence[str]]) -> list[Any]:
        vim, vmodl = sdk().vim, sdk().vmodl
        pcq = vmodl.query.PropertyCollector
        traverse = pcq.TraversalSpec(name="view", type=vim.view.ContainerView, path="view", skip=False)
        return [
            pcq.FilterSpec(
                objectSet=[pcq.ObjectSpec(obj=view, skip=True, selectSet=[traverse])],
                propSet=[
                    pcq.PropertySpec(type=getattr(vim, t), all=False, pathSet=list(paths)) for t, paths in specs.items()
                ],
            )
        ]

    def request_body(self, mo: Any, method: str, args: list[Any]) -> bytes:
        """The SOAP request pyVmomi would send (for :meth:`_raw`, and the raw-transfer bench)."""
        info = getattr(type(mo), method).info
        return self.stub.SerializeRequest(mo, info, args)  # type: ignore[no-any-return]

    def headers(self) -> dict[str, str]:
        return {
            "Cookie": self.stub.cookie,
            "SOAPAction": self.stub.versionId,
            "Content-Type": "text/xml; charset=UTF-8",
        }

    def _raw(self, mo: Any, method: str, args: list[Any], *, lean: bool = True) -> wire.Page:
        """Invoke through pyVmomi's connection pool, but parse the reply with :mod:`wire`."""
        info = getattr(type(mo), method).info
        body = self.stub.SerializeRequest(mo, info, args)
        conn = self.stub.GetConnection()
        try:
            conn.request("POST", self.stub.path, body, self.headers())
            resp = conn.getresponse()
            self.round_trips += 1
            if resp.status == 200:
                feeder = wire.Feeder(lean=lean)
                while chunk := resp.read(1 << 17):
                    feeder.feed(chunk)
                page = feeder.page()
            elif resp.status == 500:
                raise self._fault(method, info, resp.read())
            else:
                resp.read()
                raise BackendUnavailable(f"{method}: HTTP {resp.status} {resp.reason}", endpoint=self.endpoint)
        except BaseException:
            conn.close()
            raise
        self.stub.ReturnConnection(conn)
        return page

    def _fault(self, method: str, info: Any, data: bytes) -> BaseException:
        """The fault of a SOAP 500 reply: pyVmomi's own exception when it knows the fault's type
        (so :func:`translate` maps it by type), else a BackendError naming the fault."""
        try:
            fault = sdk().soap.SoapResponseDeserializer(self.stub).Deserialize(io.BytesIO(data), info.result)
        except Exception:  # noqa: BLE001 - a fault type newer than this pyVmomi: read it ourselves
            fault = None
        if isinstance(fault, BaseException):
            return fault
        name, text = wire.soap_fault(data)
        return BackendError(f"{method}: {redact(text) or 'fault'} ({name or 'unknown fault'})", endpoint=self.endpoint)

    def devices(self, vm_id: str) -> list[wire.Element]:
        """A VM's devices as raw elements (NotFound when the VM does not exist)."""
        found = {o.moid: o for o in self.fetch("VirtualMachine", [vm_id], ["config.hardware.device"])}
        if vm_id not in found or "config.hardware.device" not in found[vm_id].props and found[vm_id].missing:
            raise NotFound(f"no VM {vm_id}", endpoint=self.endpoint)
        return list(wire.items(found[vm_id].props.get("config.hardware.device")))

    def device(self, el: wire.Element) -> Any:
        return pyvmomi_device(el, self.stub)

    def retrieve(self, type_name: str, moids: Sequence[str], paths: Sequence[str]) -> dict[str, dict[str, Any]]:
        """A few objects' properties through pyVmomi (small replies; ManagedObjectNotFound
        for an unknown moref)."""
        vmodl = sdk().vmodl
        pcq = vmodl.query.PropertyCollector
        cls = getattr(sdk().vim, type_name)
        spec = pcq.FilterSpec(
            objectSet=[pcq.ObjectSpec(obj=cls(m, self.stub), skip=False) for m in moids],
            propSet=[pcq.PropertySpec(type=cls, all=False, pathSet=list(paths))],
        )
        out: dict[str, dict[str, Any]] = {}
        result = self.content.propertyCollector.RetrievePropertiesEx([spec], pcq.RetrieveOptions())
        while result is not None:
            for oc in result.objects or []:
                out[oc.obj._moId] = {p.name: p.val for p in oc.propSet or []}
            if not result.token:
                break
            result = self.content.propertyCollector.ContinueRetrievePropertiesEx(result.token)
        return out

    def find_datacenter(self, name: str) -> str | None:
        """The moref of a datacenter by inventory path (``dc1`` or ``folder/dc1``)."""
        found = self.content.searchIndex.FindByInventoryPath(name)
        if found is None or not isinstance(found, sdk().vim.Datacenter):
            return None
        return found._moId  # type: ignore[no-any-return]

    # tasks ----------------------------------------------------------------------------------
    def task_info(self, task_id: str) -> TaskInfo:
        props = self.retrieve("Task", [task_id], ["info.state", "info.progress", "info.error", "info.result"])
        if task_id not in props:
            raise NotFound(f"no task {task_id}", endpoint=self.endpoint)
        p = props[task_id]
        state = str(p.get("info.state") or "queued")
        progress = p.get("info.progress")
        error = p.get("info.error")
        message, fault, retryable = "", "", False
        if error is not None:
            message, fault = fault_message(error), fault_name(error)
            retryable = bool(translate(error, endpoint=self.endpoint).retryable)
        return TaskInfo(
            state=state,
            progress=None if progress is None else float(progress) / 100.0,
            message=message,
            fault=fault,
            retryable=retryable,
            result=_result(p.get("info.result")),
        )

    def recent_tasks(self, vm_id: str) -> list[tuple[str, str]]:
        """(task moref, descriptionId) of a VM's queued or running tasks."""
        props = self.retrieve("VirtualMachine", [vm_id], ["recentTask"])
        tasks = [t._moId for t in props.get(vm_id, {}).get("recentTask") or []]
        if not tasks:
            return []
        infos = self.retrieve("Task", tasks, ["info.state", "info.descriptionId"])
        return [
            (t, str(i.get("info.descriptionId", "")))
            for t, i in infos.items()
            if str(i.get("info.state")) in ("queued", "running")
        ]

    def relocate(
        self,
        vm_id: str,
        *,
        datastore: str | None = None,
        disks: Mapping[int, str] | None = None,
        host: str | None = None,
    ) -> str:
        vim = sdk().vim
        spec = vim.vm.RelocateSpec()
        if datastore:
            spec.datastore = self.obj("Datastore", datastore)
        if host:
            spec.host = self.obj("HostSystem", host)
        spec.disk = [
            vim.vm.RelocateSpec.DiskLocator(diskId=int(k), datastore=self.obj("Datastore", ds))
            for k, ds in (disks or {}).items()
        ]
        return self.obj("VirtualMachine", vm_id).RelocateVM_Task(spec=spec)._moId  # type: ignore[no-any-return]

    def create_secondary(
        self, vm_id: str, *, host: str, config_datastore: str, disks: Mapping[int, str], metadata_datastore: str
    ) -> str:
        """CreateSecondaryVMEx_Task with a complete FaultToleranceConfigSpec."""
        vim = sdk().vim
        devices = {wire.ctext(d, "key"): d for d in self.devices(vm_id) if wire.xsi_type(d) == "VirtualDisk"}
        disk_specs = []
        for key, ds in disks.items():
            if str(key) not in devices:
                raise NotFound(f"VM {vm_id} has no disk {key}", endpoint=self.endpoint)
            # The disk as vCenter sent it; a device is identified by its key within the VM
            # (vSphere API, VirtualDevice.key), which is all a disk pyVmomi cannot read keeps.
            disk = self.device(devices[str(key)]) or vim.vm.device.VirtualDisk(key=int(key))
            disk_specs.append(
                vim.vm.FaultToleranceVMConfigSpec.FaultToleranceDiskSpec(disk=disk, datastore=self.obj("Datastore", ds))
            )
        spec = vim.vm.FaultToleranceConfigSpec(
            metaDataPath=vim.vm.FaultToleranceMetaSpec(metaDataDatastore=self.obj("Datastore", metadata_datastore)),
            secondaryVmSpec=vim.vm.FaultToleranceVMConfigSpec(
                vmConfig=self.obj("Datastore", config_datastore), disks=disk_specs
            ),
        )
        vm = self.obj("VirtualMachine", vm_id)
        return vm.CreateSecondaryVMEx_Task(host=self.obj("HostSystem", host), spec=spec)._moId  # type: ignore[no-any-return]

    def turn_off_ft(self, vm_id: str) -> str:
        return self.obj("VirtualMachine", vm_id).TurnOffFaultToleranceForVM_Task()._moId  # type: ignore[no-any-return]

    def make_primary(self, vm_id: str, secondary_id: str) -> str:
        vm = self.obj("VirtualMachine", vm_id)
        return vm.MakePrimaryVM_Task(vm=self.obj("VirtualMachine", secondary_id))._moId  # type: ignore[no-any-return]

    def power_off(self, vm_id: str) -> str:
        return self.obj("VirtualMachine", vm_id).PowerOffVM_Task()._moId  # type: ignore[no-any-return]

    def power_on(self, vm_id: str, host: str | None = None) -> str:
        vm = self.obj("VirtualMachine", vm_id)
        target = self.obj("HostSystem", host) if host else None
        return vm.PowerOnVM_Task(host=target)._moId  # type: ignore[no-any-return]

    def unregister(self, vm_id: str) -> None:
        """UnregisterVM: out of the inventory, files kept (synchronous)."""
        self.obj("VirtualMachine", vm_id).UnregisterVM()

    def register(self, folder: str, path: str, name: str, *, host: str) -> str:
        """RegisterVM_Task of a .vmx on ``host``, in the root resource pool of its compute
        resource (the pool is required unless registering a template)."""
        h = self.obj("HostSystem", host)
        pool = h.parent.resourcePool
        task = self.obj("Folder", folder).RegisterVM_Task(path=path, name=name, asTemplate=False, pool=pool, host=h)
        return str(task._moId)

    def destroy(self, vm_id: str) -> str:
        return self.obj("VirtualMachine", vm_id).Destroy_Task()._moId  # type: ignore[no-any-return]

    def clone_isolated(self, source_id: str, name: str, *, datastore: str, host: str | None) -> str:
        """CloneVM_Task of ``source_id``, powered on with every NIC disconnected."""
        vim = sdk().vim
        props = self.retrieve("VirtualMachine", [source_id], ["parent"])
        if source_id not in props:
            raise NotFound(f"no VM {source_id}", endpoint=self.endpoint)
        p = props[source_id]
        changes = []
        for el in self.devices(source_id):
            if wire.child(el, "macAddress") is None:
                continue
            dev = self.device(el)
            if not isinstance(dev, vim.vm.device.VirtualEthernetCard):
                # Without the card as vCenter sent it there is no edit that disconnects it, and a
                # clone on the production network would clash with the VM it copies.
                raise Conflict(
                    f"cannot disconnect network card {wire.ctext(el, 'key')} ({wire.xsi_type(el)}) of "
                    f"{source_id} for an isolated test: this pyVmomi does not know its type",
                    hint="upgrade pyVmomi",
                    endpoint=self.endpoint,
                )
            dev.connectable = vim.vm.device.VirtualDevice.ConnectInfo(
                startConnected=False, connected=False, allowGuestControl=False
            )
            changes.append(vim.vm.device.VirtualDeviceSpec(operation="edit", device=dev))
        location = vim.vm.RelocateSpec(datastore=self.obj("Datastore", datastore))
        if host:
            location.host = self.obj("HostSystem", host)
        spec = vim.vm.CloneSpec(
            location=location,
            powerOn=True,
            template=False,
            config=vim.vm.ConfigSpec(deviceChange=changes, annotation="ftbridge test failover"),
        )
        task = self.obj("VirtualMachine", source_id).CloneVM_Task(folder=p["parent"], name=name, spec=spec)
        return str(task._moId)


def pyvmomi_device(el: wire.Element, stub: Any = None) -> Any:
    """A device element as pyVmomi's object (for a spec that must carry the device), or None
    when this pyVmomi does not know a type or property in it (pyVmomi refuses the whole value
    then, where :mod:`wire` reads what it needs)."""
    import xml.etree.ElementTree as ET

    ET.register_namespace("vim25", "urn:vim25")
    xml = ET.tostring(el, encoding="unicode")
    # urn:vim25 as the default namespace, as vCenter writes it: unprefixed xsi:type values name
    # vim25 types; xsd:int and the like need their prefix declared
    xml = xml.replace("<vim25:", "<").replace("</vim25:", "</").replace("xmlns:vim25=", "xmlns=", 1)
    if "xmlns:xsd=" not in xml:
        xml = xml.replace(" ", ' xmlns:xsd="http://www.w3.org/2001/XMLSchema" ', 1)
    try:
        return sdk().soap.Deserialize(xml, sdk().vim.vm.device.VirtualDevice, stub)
    except Exception:  # noqa: BLE001 - KeyError/TypeError/AttributeError: newer than this pyVmomi
        log.debug("pyVmomi cannot read device %s", wire.xsi_type(el), exc_info=True)
        return None


def _result(value: Any) -> dict[str, str]:
    """A task's result as plain strings: a VM moref, or an FT secondary's."""
    if value is None:
        return {}
    vm = getattr(value, "vm", None)  # FaultToleranceSecondaryOpResult
    if vm is not None and hasattr(vm, "_moId"):
        return {"vm": vm._moId}
    if hasattr(value, "_moId"):
        return {"moref": value._moId}
    return {}


def _ssl_context(cfg: VsphereConfig, endpoint: str) -> ssl.SSLContext:
    if not cfg.verify_tls:
        log.warning(
            "endpoint %s: TLS verification is OFF (verify_tls = false): the connection can be "
            "intercepted and the password read",
            endpoint,
        )
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    try:
        return ssl.create_default_context(cafile=str(cfg.ca_file) if cfg.ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"endpoints.{endpoint}.ca_file: cannot load {cfg.ca_file}: {exc}", endpoint=endpoint) from exc


def connect(cfg: VsphereConfig, endpoint: str) -> Session:
    """Log in. Raises AuthenticationError (password, certificate) or BackendUnavailable."""
    s = sdk()
    ctx = _ssl_context(cfg, endpoint)
    password = cfg.password.reveal(f"endpoints.{endpoint}.password")
    try:
        si = s.connect.SmartConnect(
            host=cfg.host, port=cfg.port, user=cfg.user, pwd=password, sslContext=ctx, httpConnectionTimeout=cfg.timeout
        )
        remember_session(getattr(si._stub, "cookie", "") or "")
        return Session(si, endpoint)
    except Exception as exc:  # noqa: BLE001 - translated, chained
        raise translate(exc, endpoint=endpoint, doing=f"connecting to {cfg.host}:{cfg.port}") from exc


def remember_session(cookie: str) -> None:
    """The session cookie pyVmomi sends on every call after Login (``vmware_soap_session="..."``)
    is a credential: registered, so a server or proxy echoing a request never shows it."""
    for m in re.finditer(r'vmware_soap_session="?([^";\s]+)', cookie):
        remember(m.group(1))


@contextmanager
def translated(endpoint: str, doing: str = "") -> Iterator[None]:
    """``with translated(ep, "moving vm-1"):`` turns any SDK failure into an ftbridge error."""
    try:
        yield
    except FtbridgeError:
        raise
    except Exception as exc:  # noqa: BLE001 - translated, chained
        raise translate(exc, endpoint=endpoint, doing=doing) from exc
