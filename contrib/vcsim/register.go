package main

// Power operations and (re-)registration as vCenter has them when a host fails.
//
//   - A VM whose host vCenter cannot reach (notResponding, disconnected) cannot be powered
//     on, off, reset or suspended through vCenter: the task fails with HostNotConnected ("thrown
//     if a method needs to communicate with a host that has been disconnected", vSphere API;
//     govmomi's later simulator raises it for host calls on a host that is not connected).
//     vcsim 0.24.2 powers such VMs on and off as if nothing happened.
//   - UnregisterVM keeps the VM's files (vSphere API: "removes this virtual machine from the
//     inventory without removing any of the virtual machine's files on disk"); RegisterVM_Task
//     of its .vmx adds it back, on the host and pool given, from what the .vmx holds. vcsim
//     0.24.2 registers an empty VM (its .vmx files are placeholders), so the lab keeps the
//     configuration of every VM it unregisters, by .vmx path, as the file would, and
//     registers that. vcsim's own rules stay: UnregisterVM refuses a powered-on VM
//     (InvalidPowerState) and RegisterVM_Task a path already registered (AlreadyExists).

import (
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

// savedVM is what a .vmx holds and RegisterVM_Task reads back.
type savedVM struct {
	name     string
	devices  []types.BaseVirtualDevice
	cpus     int32
	memoryMB int32
	uuid     string
	instance string
	managed  *types.ManagedByInfo
	files    types.VirtualMachineFileInfo
}

func (x *ext) soapPower(m *simulator.Method) (interface{}, *failure) {
	vm, ok := simulator.Map.Get(m.This).(*simulator.VirtualMachine)
	if !ok {
		return nil, nil
	}
	host := hostByRef(vm.Runtime.Host)
	if host == nil || host.Runtime.ConnectionState == types.HostSystemConnectionStateConnected {
		return nil, nil // vcsim's own
	}
	name := map[string]string{"PowerOnVM_Task": "powerOn", "PowerOffVM_Task": "powerOff",
		"ResetVM_Task": "reset", "SuspendVM_Task": "suspend"}[m.Name]
	ref := runTask(vm.Self, name, func() (types.AnyType, *failure) {
		return nil, fail(&types.HostNotConnected{}, "Unable to communicate with the remote host %s, since it is %s",
			host.Name, host.Runtime.ConnectionState)
	})
	return taskResponse(m.Name, ref), nil
}

func taskResponse(method string, ref types.ManagedObjectReference) interface{} {
	switch method {
	case "PowerOnVM_Task":
		return &types.PowerOnVM_TaskResponse{Returnval: ref}
	case "PowerOffVM_Task":
		return &types.PowerOffVM_TaskResponse{Returnval: ref}
	case "ResetVM_Task":
		return &types.ResetVM_TaskResponse{Returnval: ref}
	}
	return &types.SuspendVM_TaskResponse{Returnval: ref}
}

// soapUnregister remembers what the .vmx holds, then lets vcsim unregister.
func (x *ext) soapUnregister(m *simulator.Method) (interface{}, *failure) {
	vm, ok := simulator.Map.Get(m.This).(*simulator.VirtualMachine)
	if !ok || vm.Config == nil || vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn {
		return nil, nil // vcsim answers (and refuses a powered-on VM)
	}
	devices, err := copyDevices(vm.Config.Hardware.Device)
	if err != nil {
		return nil, fail(&types.SystemError{Reason: err.Error()}, "copying devices of %s: %s", vm.Name, err)
	}
	saved := savedVM{name: vm.Name, devices: devices, cpus: vm.Config.Hardware.NumCPU,
		memoryMB: vm.Config.Hardware.MemoryMB, uuid: vm.Config.Uuid, instance: vm.Config.InstanceUuid,
		managed: vm.Config.ManagedBy, files: vm.Config.Files}
	if x.unregistered == nil {
		x.unregistered = map[string]savedVM{}
	}
	x.unregistered[vm.Config.Files.VmPathName] = saved
	return nil, nil
}

func (x *ext) soapRegister(m *simulator.Method) (interface{}, *failure) {
	req := m.Body.(*types.RegisterVM_Task)
	saved, ok := x.unregistered[req.Path]
	if !ok {
		return nil, nil // a .vmx this lab never unregistered: vcsim's own (an empty VM)
	}
	if req.Host != nil {
		if h := hostByRef(req.Host); h != nil && h.Runtime.ConnectionState != types.HostSystemConnectionStateConnected {
			ref := runTask(m.This, "registerVm", func() (types.AnyType, *failure) {
				return nil, fail(&types.HostNotConnected{}, "Unable to communicate with the remote host %s, since it is %s",
					h.Name, h.Runtime.ConnectionState)
			})
			return &types.RegisterVM_TaskResponse{Returnval: ref}, nil
		}
	}
	var host *object.HostSystem
	if req.Host != nil {
		host = object.NewHostSystem(x.c, *req.Host)
	}
	var poolObj *object.ResourcePool
	if req.Pool != nil {
		poolObj = object.NewResourcePool(x.c, *req.Pool)
	}
	name := req.Name
	if name == "" {
		name = saved.name
	}
	folder := object.NewFolder(x.c, m.This)
	task, err := folder.RegisterVM(x.ctx, req.Path, name, req.AsTemplate, poolObj, host)
	if err != nil {
		return nil, fail(&types.SystemError{Reason: err.Error()}, "registering %s: %s", req.Path, err)
	}
	info, err := task.WaitForResult(x.ctx, nil)
	if err != nil {
		// vcsim's own refusal (AlreadyExists...): its task carries the fault
		return &types.RegisterVM_TaskResponse{Returnval: task.Reference()}, nil
	}
	vm := simulator.Map.Get(info.Result.(types.ManagedObjectReference)).(*simulator.VirtualMachine)
	simulator.Map.WithLock(vm, func() {
		vm.Config.Hardware.Device = saved.devices
		vm.Config.Hardware.NumCPU = saved.cpus
		vm.Config.Hardware.MemoryMB = saved.memoryMB
		vm.Config.Uuid = saved.uuid
		vm.Config.InstanceUuid = saved.instance
		vm.Config.ManagedBy = saved.managed
		vm.Config.Files.LogDirectory = saved.files.LogDirectory
		vm.Config.Files.SnapshotDirectory = saved.files.SnapshotDirectory
		vm.Config.Files.SuspendDirectory = saved.files.SuspendDirectory
		vm.Summary.Config.NumCpu = saved.cpus
		vm.Summary.Config.MemorySizeMB = saved.memoryMB
		vm.Summary.Config.Uuid = saved.uuid
		vm.Summary.Config.InstanceUuid = saved.instance
	})
	refreshDatastores(vm)
	delete(x.unregistered, req.Path)
	return &types.RegisterVM_TaskResponse{Returnval: task.Reference()}, nil
}
