package main

// Fault Tolerance as vSphere 6+ models it: the secondary is a VirtualMachine of its own
// (config.ftInfo.role 2) with its own .vmx and disks on the datastores the
// FaultToleranceConfigSpec names; the primary's config.ftInfo lists it, and a tie-breaker
// metadata directory sits on a datastore both hosts mount. Limits are vSphere's defaults.

import (
	"fmt"
	"os"
	"path"
	"path/filepath"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/simulator/esx"
	"github.com/vmware/govmomi/vim25/types"
)

const (
	maxFTVMsPerHost   = 4 // das.maxftvmsperhost
	maxFTvCPUsPerHost = 8 // das.maxftvcpusperhost
	maxFTvCPUsPerVM   = 8
	maxFTDisks        = 16
	ftMetadataFile    = "shared.vmft"
)

type ftPlacement struct {
	host   *simulator.HostSystem
	config *simulator.Datastore
	disks  map[int32]*simulator.Datastore
	meta   *simulator.Datastore
}

func primaryInfo(vm *simulator.VirtualMachine) *types.FaultTolerancePrimaryConfigInfo {
	if vm.Config == nil {
		return nil
	}
	info, _ := vm.Config.FtInfo.(*types.FaultTolerancePrimaryConfigInfo)
	return info
}

func isSecondary(vm *simulator.VirtualMachine) bool {
	return vm.Config != nil && vm.Config.FtInfo != nil && vm.Config.FtInfo.GetFaultToleranceConfigInfo().Role != 1
}

func ftActive(vm *simulator.VirtualMachine) bool {
	if isSecondary(vm) {
		return true
	}
	info := primaryInfo(vm)
	return info != nil && len(info.Secondaries) > 0
}

// --- SOAP entry points ---------------------------------------------------------------------

func (x *ext) soapCreateSecondary(m *simulator.Method) (interface{}, *failure) {
	req := m.Body.(*types.CreateSecondaryVMEx_Task)
	vm, f := vmByRef(req.This)
	if f != nil {
		return nil, f
	}
	ref := runTask(vm.Self, "createSecondaryEx", func() (types.AnyType, *failure) {
		pl, f := placementFromSpec(vm, req.Host, req.Spec)
		if f != nil {
			return nil, f
		}
		sec, f := x.createSecondary(vm, pl, true)
		if f != nil {
			return nil, f
		}
		return types.FaultToleranceSecondaryOpResult{
			Vm:               sec.Self,
			PowerOnAttempted: vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn,
		}, nil
	})
	return &types.CreateSecondaryVMEx_TaskResponse{Returnval: ref}, nil
}

func (x *ext) soapTurnOffFT(m *simulator.Method) (interface{}, *failure) {
	req := m.Body.(*types.TurnOffFaultToleranceForVM_Task)
	vm, f := vmByRef(req.This)
	if f != nil {
		return nil, f
	}
	ref := runTask(vm.Self, "turnOffFaultTolerance", func() (types.AnyType, *failure) {
		return nil, x.turnOffFT(vm)
	})
	return &types.TurnOffFaultToleranceForVM_TaskResponse{Returnval: ref}, nil
}

func (x *ext) soapTerminateFT(m *simulator.Method) (interface{}, *failure) {
	req := m.Body.(*types.TerminateFaultTolerantVM_Task)
	vm, f := vmByRef(req.This)
	if f != nil {
		return nil, f
	}
	ref := runTask(vm.Self, "terminateFaultTolerantVM", func() (types.AnyType, *failure) {
		if req.Vm == nil {
			return nil, fail(&types.InvalidArgument{InvalidProperty: "vm"}, "the secondary to terminate (vm) is required")
		}
		return nil, x.terminateFT(vm, *req.Vm)
	})
	return &types.TerminateFaultTolerantVM_TaskResponse{Returnval: ref}, nil
}

func (x *ext) soapMakePrimary(m *simulator.Method) (interface{}, *failure) {
	req := m.Body.(*types.MakePrimaryVM_Task)
	vm, f := vmByRef(req.This)
	if f != nil {
		return nil, f
	}
	ref := runTask(vm.Self, "makePrimary", func() (types.AnyType, *failure) {
		return nil, x.makePrimary(vm, req.Vm)
	})
	return &types.MakePrimaryVM_TaskResponse{Returnval: ref}, nil
}

// --- create ----------------------------------------------------------------------------------

func placementFromSpec(vm *simulator.VirtualMachine, hostRef *types.ManagedObjectReference,
	spec *types.FaultToleranceConfigSpec) (*ftPlacement, *failure) {
	if spec == nil || spec.SecondaryVmSpec == nil || spec.SecondaryVmSpec.VmConfig == nil {
		return nil, fail(&types.InvalidArgument{InvalidProperty: "spec.secondaryVmSpec.vmConfig"},
			"a FaultToleranceConfigSpec naming the datastore of the secondary's configuration (secondaryVmSpec.vmConfig) is required")
	}
	if spec.MetaDataPath == nil {
		return nil, fail(&types.InvalidArgument{InvalidProperty: "spec.metaDataPath"},
			"the FT metadata datastore (spec.metaDataPath.metaDataDatastore) is required")
	}
	pl := &ftPlacement{disks: map[int32]*simulator.Datastore{}}
	if pl.config = dsByRef(spec.SecondaryVmSpec.VmConfig); pl.config == nil {
		return nil, fail(&types.InvalidArgument{InvalidProperty: "spec.secondaryVmSpec.vmConfig"},
			"datastore %s does not exist", spec.SecondaryVmSpec.VmConfig.Value)
	}
	if pl.meta = dsByRef(&spec.MetaDataPath.MetaDataDatastore); pl.meta == nil {
		return nil, fail(&types.InvalidArgument{InvalidProperty: "spec.metaDataPath.metaDataDatastore"},
			"datastore %s does not exist", spec.MetaDataPath.MetaDataDatastore.Value)
	}
	for i, d := range spec.SecondaryVmSpec.Disks {
		ds := dsByRef(&d.Datastore)
		if ds == nil || d.Disk == nil {
			return nil, fail(&types.InvalidArgument{InvalidProperty: fmt.Sprintf("spec.secondaryVmSpec.disks[%d]", i)},
				"disk spec %d names no disk or an unknown datastore", i)
		}
		pl.disks[d.Disk.GetVirtualDevice().Key] = ds
	}
	if hostRef != nil {
		if pl.host = hostByRef(hostRef); pl.host == nil {
			return nil, fail(&types.InvalidArgument{InvalidProperty: "host"}, "host %s does not exist", hostRef.Value)
		}
		return pl, nil
	}
	// No host given: any other host that is up and mounts every datastore of the spec.
	for _, e := range simulator.Map.All("HostSystem") {
		h := e.(*simulator.HostSystem)
		if vm.Runtime.Host != nil && h.Self == *vm.Runtime.Host || !hostUp(h) || !mounts(h, pl.config) {
			continue
		}
		ok := true
		for _, ds := range pl.disks {
			ok = ok && mounts(h, ds)
		}
		if ok {
			pl.host = h
			return pl, nil
		}
	}
	return nil, fail(&types.NoCompatibleHost{}, "no other host that is up mounts every datastore of the secondary")
}

// ftLoad counts the FT VMs (primaries and secondaries) running on a host, and their vCPUs.
func ftLoad(h *simulator.HostSystem) (vms int, vcpus int) {
	for _, ref := range h.Vm {
		vm, ok := simulator.Map.Get(ref).(*simulator.VirtualMachine)
		if !ok || vm.Config == nil || vm.Config.FtInfo == nil {
			continue
		}
		vms++
		vcpus += int(vm.Config.Hardware.NumCPU)
	}
	return vms, vcpus
}

func checkHostLimits(h *simulator.HostSystem, addVMs, addCPUs int) *failure {
	n, cpus := ftLoad(h)
	if n+addVMs > maxFTVMsPerHost {
		return fail(&types.VmFaultToleranceTooManyVMsOnHost{HostName: h.Name, MaxNumFtVms: maxFTVMsPerHost},
			"host %s would run %d fault tolerant VMs; at most %d are allowed (das.maxftvmsperhost)", h.Name, n+addVMs, maxFTVMsPerHost)
	}
	if cpus+addCPUs > maxFTvCPUsPerHost {
		return fail(&types.VmFaultToleranceTooManyFtVcpusOnHost{HostName: h.Name, MaxNumFtVcpus: maxFTvCPUsPerHost},
			"host %s would run %d FT vCPUs; at most %d are allowed (das.maxftvcpusperhost)", h.Name, cpus+addCPUs, maxFTvCPUsPerHost)
	}
	return nil
}

func (x *ext) checkSecondary(vm *simulator.VirtualMachine, pl *ftPlacement, enforce bool) *failure {
	if vm.Config.Template {
		return fail(&types.InvalidState{}, "%s is a template: templates cannot be fault tolerant", vm.Name)
	}
	if isSecondary(vm) {
		return fail(&types.InvalidState{}, "%s is an FT secondary: create secondaries from its primary", vm.Name)
	}
	if info := primaryInfo(vm); info != nil && len(info.Secondaries) > 0 {
		return fail(&types.InvalidState{}, "%s already has an FT secondary (%s): vSphere FT keeps exactly one", vm.Name, info.Secondaries[0].Value)
	}
	primaryHost := hostByRef(vm.Runtime.Host)
	if primaryHost == nil {
		return fail(&types.InvalidState{}, "%s has no host", vm.Name)
	}
	if pl.host.Self == primaryHost.Self && enforce {
		return fail(&types.InvalidArgument{InvalidProperty: "host"},
			"the secondary must run on another host than the primary (%s)", primaryHost.Name)
	}
	if !hostUp(pl.host) && enforce {
		return fail(&types.InvalidHostState{Host: &pl.host.Self}, "host %s is %s", pl.host.Name, hostStateText(pl.host))
	}
	disks := disksOf(vm)
	keys := map[int32]bool{}
	for _, d := range disks {
		keys[d.Key] = true
		if _, ok := pl.disks[d.Key]; !ok {
			return fail(&types.InvalidArgument{InvalidProperty: "spec.secondaryVmSpec.disks"},
				"the spec names no datastore for disk %d of %s", d.Key, vm.Name)
		}
	}
	for key := range pl.disks {
		if !keys[key] {
			return fail(&types.InvalidArgument{InvalidProperty: "spec.secondaryVmSpec.disks"},
				"%s has no disk with key %d", vm.Name, key)
		}
	}
	check := func(ds *simulator.Datastore, h *simulator.HostSystem, role string) *failure {
		if !ds.Summary.Accessible {
			return fail(&types.InvalidDatastore{Datastore: &ds.Self, Name: ds.Name}, "datastore %s (%s) is not accessible", ds.Name, role)
		}
		if !mounts(h, ds) {
			return fail(&types.InvalidDatastore{Datastore: &ds.Self, Name: ds.Name},
				"host %s does not mount datastore %s (%s)", h.Name, ds.Name, role)
		}
		return nil
	}
	if f := check(pl.config, pl.host, "secondary configuration"); f != nil {
		return f
	}
	for key, ds := range pl.disks {
		if f := check(ds, pl.host, fmt.Sprintf("secondary disk %d", key)); f != nil {
			return f
		}
	}
	if enforce { // an estate may hold what vCenter would refuse, for audits to find
		for _, h := range []*simulator.HostSystem{primaryHost, pl.host} {
			if f := check(pl.meta, h, "FT metadata, which both hosts must reach"); f != nil {
				return f
			}
		}
		if n := int(vm.Config.Hardware.NumCPU); n > maxFTvCPUsPerVM {
			return fail(&types.NotSupported{}, "%s has %d vCPUs; fault tolerance supports at most %d", vm.Name, n, maxFTvCPUsPerVM)
		}
		if len(disks) > maxFTDisks {
			return fail(&types.NotSupported{}, "%s has %d disks; fault tolerance supports at most %d", vm.Name, len(disks), maxFTDisks)
		}
		cpus := int(vm.Config.Hardware.NumCPU)
		if primaryInfo(vm) == nil { // the primary starts counting on its host too
			if f := checkHostLimits(primaryHost, 1, cpus); f != nil {
				return f
			}
		}
		if f := checkHostLimits(pl.host, 1, cpus); f != nil {
			return f
		}
	}
	need := map[*simulator.Datastore]int64{}
	for _, d := range disks {
		if enforce {
			need[pl.disks[d.Key]] += diskSize(d)
		}
	}
	for ds, size := range need {
		if size > ds.Summary.FreeSpace {
			return fail(&types.NoDiskSpace{FileFault: types.FileFault{File: ds.Name}, Datastore: ds.Name},
				"insufficient disk space on datastore %s: %d bytes needed, %d free", ds.Name, size, ds.Summary.FreeSpace)
		}
	}
	return nil
}

// secondaryDir picks a directory name for the secondary's files that is free on every
// datastore it will use.
func secondaryDir(name string, pl *ftPlacement) string {
	all := []*simulator.Datastore{pl.config}
	for _, ds := range pl.disks {
		all = append(all, ds)
	}
	for i := 0; ; i++ {
		dir := name + "-ft"
		if i > 0 {
			dir = fmt.Sprintf("%s-ft%d", name, i+1)
		}
		free := true
		for _, ds := range all {
			if _, err := os.Stat(filepath.Join(ds.Info.GetDatastoreInfo().Url, dir)); err == nil {
				free = false
			}
		}
		if free {
			return dir
		}
	}
}

func (x *ext) createSecondary(vm *simulator.VirtualMachine, pl *ftPlacement, enforce bool) (*simulator.VirtualMachine, *failure) {
	if f := x.checkSecondary(vm, pl, enforce); f != nil {
		return nil, f
	}
	name := vm.Name
	dir := secondaryDir(name, pl)

	devices, err := copyDevices(vm.Config.Hardware.Device)
	if err != nil {
		return nil, fail(&types.SystemError{Reason: err.Error()}, "copying devices of %s: %s", name, err)
	}
	defaults := object.VirtualDeviceList(esx.VirtualDevice)
	var made []string
	cleanup := func() {
		for _, d := range made {
			_ = os.RemoveAll(d)
		}
	}
	spec := types.VirtualMachineConfigSpec{
		Name:     name,
		GuestId:  vm.Config.GuestId,
		NumCPUs:  vm.Config.Hardware.NumCPU,
		MemoryMB: int64(vm.Config.Hardware.MemoryMB),
		Files:    &types.VirtualMachineFileInfo{VmPathName: fmt.Sprintf("[%s] %s/%s.vmx", pl.config.Name, dir, name)},
	}
	used := map[string]bool{}
	for _, d := range devices {
		if defaults.FindByKey(d.GetVirtualDevice().Key) != nil {
			continue // vcsim adds its default devices itself
		}
		change := &types.VirtualDeviceConfigSpec{Operation: types.VirtualDeviceConfigSpecOperationAdd, Device: d}
		if disk, ok := d.(*types.VirtualDisk); ok {
			b, ok := disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
			if !ok {
				cleanup()
				return nil, fail(&types.NotSupported{}, "disk %d of %s has a %T backing, which FT cannot copy", disk.Key, name, disk.Backing)
			}
			ds := pl.disks[disk.Key]
			_, rel, _ := splitPath(b.FileName)
			base := path.Base(rel)
			for i := 1; used[ds.Name+"/"+base]; i++ {
				base = fmt.Sprintf("%s_%d.vmdk", trimExt(path.Base(rel)), i)
			}
			used[ds.Name+"/"+base] = true
			local := filepath.Join(ds.Info.GetDatastoreInfo().Url, dir)
			if _, err := os.Stat(local); err != nil {
				_ = os.MkdirAll(local, 0o700)
				made = append(made, local)
			}
			b.FileName = fmt.Sprintf("[%s] %s/%s", ds.Name, dir, base)
			b.Datastore = nil
			b.Parent = nil
			change.FileOperation = types.VirtualDeviceConfigSpecFileOperationCreate
		}
		spec.DeviceChange = append(spec.DeviceChange, change)
	}

	host := object.NewHostSystem(x.c, pl.host.Self)
	pool, err := host.ResourcePool(x.ctx)
	if err != nil {
		cleanup()
		return nil, fail(&types.SystemError{Reason: err.Error()}, "resource pool of %s: %s", pl.host.Name, err)
	}
	folder := object.NewFolder(x.c, *vm.Parent)
	task, err := folder.CreateVM(x.ctx, spec, pool, host)
	if err != nil {
		cleanup()
		return nil, fail(&types.SystemError{Reason: err.Error()}, "creating the secondary of %s: %s", name, err)
	}
	info, err := task.WaitForResult(x.ctx, nil)
	if err != nil {
		cleanup()
		return nil, fail(&types.SystemError{Reason: err.Error()}, "creating the secondary of %s: %s", name, err)
	}
	sec := simulator.Map.Get(info.Result.(types.ManagedObjectReference)).(*simulator.VirtualMachine)

	on := vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn
	state := types.VirtualMachineFaultToleranceStateEnabled
	if on {
		state = types.VirtualMachineFaultToleranceStateRunning
	}
	common := types.FaultToleranceConfigInfo{
		InstanceUuids: []string{vm.Config.InstanceUuid, sec.Config.InstanceUuid},
		ConfigPaths:   []string{vm.Config.Files.VmPathName, sec.Config.Files.VmPathName},
	}
	secInfo := &types.FaultToleranceSecondaryConfigInfo{FaultToleranceConfigInfo: common, PrimaryVM: vm.Self}
	secInfo.Role = 2
	simulator.Map.WithLock(sec, func() { sec.Config.FtInfo = secInfo })
	setFTState(sec, state)

	metaDir := fmt.Sprintf("[%s] %s", pl.meta.Name, name)
	if local, _, err := fileOf(vm, metaDir); err == nil {
		_ = os.MkdirAll(local, 0o700)
		_ = os.WriteFile(filepath.Join(local, ftMetadataFile), []byte(vm.Config.InstanceUuid+"\n"), 0o600)
	}
	primary := &types.FaultTolerancePrimaryConfigInfo{FaultToleranceConfigInfo: common, Secondaries: []types.ManagedObjectReference{sec.Self}}
	primary.Role = 1
	simulator.Map.WithLock(vm, func() {
		vm.Config.FtInfo = primary
		vm.Config.Files.FtMetadataDirectory = metaDir
	})
	setFTState(vm, state)

	if on {
		if task, err := object.NewVirtualMachine(x.c, sec.Self).PowerOn(x.ctx); err == nil {
			_ = task.Wait(x.ctx)
		}
	}
	return sec, nil
}

func trimExt(name string) string {
	return name[:len(name)-len(path.Ext(name))]
}

// --- remove ----------------------------------------------------------------------------------

// destroyVM powers a VM off and destroys it; vcsim deletes its disks (returning their space)
// and its folder; disk folders elsewhere are removed here once empty.
func (x *ext) destroyVM(vm *simulator.VirtualMachine) *failure {
	obj := object.NewVirtualMachine(x.c, vm.Self)
	if vm.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOff {
		setPower(vm, types.VirtualMachinePowerStatePoweredOff)
	}
	var disks []string
	for _, d := range disksOf(vm) {
		if b := diskBacking(d); b != nil {
			if local, _, err := fileOf(vm, b.FileName); err == nil {
				disks = append(disks, local)
			}
		}
	}
	task, err := obj.Destroy(x.ctx)
	if err == nil {
		err = task.Wait(x.ctx)
	}
	if err != nil {
		return fail(&types.SystemError{Reason: err.Error()}, "destroying %s: %s", vm.Name, err)
	}
	for _, local := range disks {
		for _, p := range vmdkFiles(local) {
			_ = os.Remove(p)
		}
		removeIfEmpty(filepath.Dir(local))
	}
	return nil
}

func (x *ext) turnOffFT(vm *simulator.VirtualMachine) *failure {
	if isSecondary(vm) {
		return fail(&types.InvalidState{}, "%s is an FT secondary: turn fault tolerance off on its primary", vm.Name)
	}
	info := primaryInfo(vm)
	if info == nil {
		return fail(&types.InvalidState{}, "%s is not fault tolerant", vm.Name)
	}
	for _, ref := range info.Secondaries {
		if sec, f := vmByRef(ref); f == nil {
			if f := x.destroyVM(sec); f != nil {
				return f
			}
		}
	}
	if local, _, err := fileOf(vm, vm.Config.Files.FtMetadataDirectory); err == nil {
		_ = os.Remove(filepath.Join(local, ftMetadataFile))
		removeIfEmpty(local)
	}
	simulator.Map.WithLock(vm, func() {
		vm.Config.FtInfo = nil
		vm.Config.Files.FtMetadataDirectory = ""
	})
	setFTState(vm, types.VirtualMachineFaultToleranceStateNotConfigured)
	return nil
}

func (x *ext) secondaryOf(vm *simulator.VirtualMachine, ref types.ManagedObjectReference) (*simulator.VirtualMachine, *failure) {
	info := primaryInfo(vm)
	if info == nil || isSecondary(vm) {
		return nil, fail(&types.InvalidState{}, "%s is not the primary of a fault tolerant pair", vm.Name)
	}
	for _, s := range info.Secondaries {
		if s == ref {
			return vmByRef(ref)
		}
	}
	return nil, fail(&types.InvalidArgument{InvalidProperty: "vm"}, "%s is not a secondary of %s", ref.Value, vm.Name)
}

// terminateFT kills the secondary; FT starts it again at once, as vSphere does.
func (x *ext) terminateFT(vm *simulator.VirtualMachine, ref types.ManagedObjectReference) *failure {
	sec, f := x.secondaryOf(vm, ref)
	if f != nil {
		return f
	}
	setPower(sec, types.VirtualMachinePowerStatePoweredOff)
	if vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn {
		setPower(sec, types.VirtualMachinePowerStatePoweredOn)
	}
	return nil
}

// makePrimary fails the FT pair over to the secondary: the VM (same moref) now runs on the
// secondary's host from the secondary's files; the old primary's files are deleted; FT
// waits for a new secondary (needSecondary).
func (x *ext) makePrimary(vm *simulator.VirtualMachine, ref types.ManagedObjectReference) *failure {
	sec, f := x.secondaryOf(vm, ref)
	if f != nil {
		return f
	}
	secHost := hostByRef(sec.Runtime.Host)
	if secHost == nil || secHost.Runtime.ConnectionState != types.HostSystemConnectionStateConnected {
		return fail(&types.InvalidHostConnectionState{}, "the secondary's host is not connected: it cannot take over")
	}
	secDisks := map[int32]*types.VirtualDeviceFileBackingInfo{}
	for _, d := range disksOf(sec) {
		if b := diskBacking(d); b != nil {
			if _, ds, err := fileOf(vm, b.FileName); err != nil || !ds.Summary.Accessible {
				return fail(&types.InvalidDatastore{}, "disk %d of the secondary is not accessible", d.Key)
			}
			secDisks[d.Key] = b
		}
	}
	type old struct {
		local string
		ds    *simulator.Datastore
		size  int64
	}
	var olds []old
	for _, d := range disksOf(vm) {
		if _, ok := secDisks[d.Key]; !ok {
			return fail(&types.InvalidState{}, "the secondary has no copy of disk %d", d.Key)
		}
		if b := diskBacking(d); b != nil {
			if local, ds, err := fileOf(vm, b.FileName); err == nil {
				olds = append(olds, old{local, ds, diskSize(d)})
			}
		}
	}
	oldVmx, _, _ := fileOf(vm, vm.Config.Files.VmPathName)

	// The secondary's object goes away; its files are the VM's now.
	setPower(sec, types.VirtualMachinePowerStatePoweredOff)
	if err := object.NewVirtualMachine(x.c, sec.Self).Unregister(x.ctx); err != nil {
		return fail(&types.SystemError{Reason: err.Error()}, "retiring the secondary object: %s", err)
	}

	simulator.Map.WithLock(vm, func() {
		for _, d := range disksOf(vm) {
			b := diskBacking(d)
			sb := secDisks[d.Key]
			b.FileName = sb.FileName
			if sb.Datastore != nil {
				r := *sb.Datastore
				b.Datastore = &r
			}
		}
		files := sec.Config.Files
		vm.Config.Files.VmPathName = files.VmPathName
		vm.Config.Files.LogDirectory = files.LogDirectory
		vm.Config.Files.SnapshotDirectory = files.SnapshotDirectory
		vm.Config.Files.SuspendDirectory = files.SuspendDirectory
		vm.Summary.Config.VmPathName = files.VmPathName
		vm.Runtime.ConnectionState = types.VirtualMachineConnectionStateConnected
		vm.Summary.Runtime.ConnectionState = types.VirtualMachineConnectionStateConnected
		info := &types.FaultTolerancePrimaryConfigInfo{FaultToleranceConfigInfo: types.FaultToleranceConfigInfo{
			Role: 1, InstanceUuids: []string{vm.Config.InstanceUuid}, ConfigPaths: []string{files.VmPathName}}}
		vm.Config.FtInfo = info
	})
	if local, _, err := fileOf(vm, vm.Config.Files.VmPathName); err == nil {
		setVMLog(vm, filepath.Join(filepath.Dir(local), "vmware.log"))
	}
	moveVMHost(vm, secHost, sec.ResourcePool)
	setPower(vm, types.VirtualMachinePowerStatePoweredOn)
	setFTState(vm, types.VirtualMachineFaultToleranceStateNeedSecondary)

	for _, o := range olds {
		for _, p := range vmdkFiles(o.local) {
			_ = os.Remove(p)
		}
		adjustFree(o.ds, o.size)
		removeIfEmpty(filepath.Dir(o.local))
	}
	if oldVmx != "" {
		dir := filepath.Dir(oldVmx)
		_ = os.Remove(oldVmx)
		_ = os.Remove(filepath.Join(dir, vm.Name+".nvram"))
		_ = os.Remove(filepath.Join(dir, "vmware.log"))
		removeIfEmpty(dir)
	}
	refreshDatastores(vm)
	return nil
}
