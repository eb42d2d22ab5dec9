package main

// RelocateVM_Task that moves files as vCenter does: the config (and every disk without a
// locator) to spec.datastore, each disk with a locator to its own datastore, the host per
// spec.host; file paths, disk backings, VirtualMachine.datastore, Datastore.vm and free
// space follow. Fault tolerant VMs cannot move storage (vSphere refuses Storage vMotion
// while FT is on), and a target without room fails the task as vCenter does.
//
// Also CloneVM_Task and Destroy_Task for VMs: vcsim's clone shares device objects with its
// source (rewriting the source's disk paths) and ignores spec.powerOn; its destroy leaves
// disks outside the VM folder and their space behind.

import (
	"fmt"
	"os"
	"path"
	"path/filepath"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

func (x *ext) soapRelocate(m *simulator.Method) (interface{}, *failure) {
	req := m.Body.(*types.RelocateVM_Task)
	vm, f := vmByRef(req.This)
	if f != nil {
		return nil, f
	}
	ref := runTask(vm.Self, "relocate", func() (types.AnyType, *failure) {
		return nil, x.relocate(vm, &req.Spec)
	})
	return &types.RelocateVM_TaskResponse{Returnval: ref}, nil
}

type fileMove struct {
	src, dst   string // local files
	dstPath    string // "[ds] dir/file"
	disk       *types.VirtualDisk
	from, to   *simulator.Datastore
	descriptor bool
}

func (x *ext) relocate(vm *simulator.VirtualMachine, spec *types.VirtualMachineRelocateSpec) *failure {
	cfgName, cfgRel := configDir(vm)
	cfgFrom := datastoreIn(dcOf(vm.Self), cfgName)
	if cfgFrom == nil {
		return fail(&types.InvalidState{}, "the configuration of %s is on an unknown datastore %q", vm.Name, cfgName)
	}
	host := hostByRef(vm.Runtime.Host)
	if spec.Host != nil {
		if host = hostByRef(spec.Host); host == nil {
			return fail(&types.InvalidArgument{InvalidProperty: "spec.host"}, "host %s does not exist", spec.Host.Value)
		}
		if !hostUp(host) {
			return fail(&types.InvalidHostState{Host: &host.Self}, "host %s is %s", host.Name, hostStateText(host))
		}
	}
	if host == nil {
		return fail(&types.InvalidState{}, "%s has no host", vm.Name)
	}
	cfgTo := cfgFrom
	if spec.Datastore != nil {
		if cfgTo = dsByRef(spec.Datastore); cfgTo == nil {
			return fail(&types.InvalidArgument{InvalidProperty: "spec.datastore"}, "datastore %s does not exist", spec.Datastore.Value)
		}
	}
	locators := map[int32]*simulator.Datastore{}
	for i, l := range spec.Disk {
		ds := dsByRef(&l.Datastore)
		if ds == nil {
			return fail(&types.InvalidArgument{InvalidProperty: fmt.Sprintf("spec.disk[%d].datastore", i)}, "datastore %s does not exist", l.Datastore.Value)
		}
		locators[l.DiskId] = ds
	}
	disks := disksOf(vm)
	known := map[int32]bool{}
	for _, d := range disks {
		known[d.Key] = true
	}
	for key := range locators {
		if !known[key] {
			return fail(&types.InvalidArgument{InvalidProperty: "spec.disk"}, "%s has no disk with key %d", vm.Name, key)
		}
	}

	// Where each disk goes.
	targets := map[int32]*simulator.Datastore{}
	sources := map[int32]*simulator.Datastore{}
	storageMoves := cfgTo != cfgFrom
	for _, d := range disks {
		b := diskBacking(d)
		if b == nil {
			continue
		}
		_, from, err := fileOf(vm, b.FileName)
		if err != nil {
			return fail(&types.InvalidState{}, "disk %d of %s: %s", d.Key, vm.Name, err)
		}
		sources[d.Key] = from
		to := from
		if ds, ok := locators[d.Key]; ok {
			to = ds
		} else if spec.Datastore != nil {
			to = cfgTo
		}
		targets[d.Key] = to
		storageMoves = storageMoves || to != from
	}
	if storageMoves && ftActive(vm) {
		return fail(&types.InvalidState{}, "%s is fault tolerant: vSphere cannot move its storage while FT is on "+
			"(turn fault tolerance off, move it, and turn it on again)", vm.Name)
	}
	if ftActive(vm) && !isSecondary(vm) && spec.Host != nil {
		for _, ref := range primaryInfo(vm).Secondaries {
			if sec, f := vmByRef(ref); f == nil && sec.Runtime.Host != nil && *sec.Runtime.Host == host.Self {
				return fail(&types.InvalidArgument{InvalidProperty: "spec.host"},
					"%s is fault tolerant and its secondary runs on %s: the primary cannot move there", vm.Name, host.Name)
			}
		}
	}

	// Every datastore the VM will use must be reachable from its host, with room to spare.
	need := map[*simulator.Datastore]int64{}
	use := map[*simulator.Datastore]bool{cfgTo: true}
	for _, d := range disks {
		to := targets[d.Key]
		if to == nil {
			continue
		}
		use[to] = true
		if to != sources[d.Key] {
			need[to] += diskSize(d)
		}
	}
	for ds := range use {
		if !ds.Summary.Accessible {
			return fail(&types.InvalidDatastore{Datastore: &ds.Self, Name: ds.Name}, "datastore %s is not accessible", ds.Name)
		}
		if !mounts(host, ds) {
			return fail(&types.InvalidDatastore{Datastore: &ds.Self, Name: ds.Name}, "host %s does not mount datastore %s", host.Name, ds.Name)
		}
	}
	for ds, size := range need {
		if size > ds.Summary.FreeSpace {
			return fail(&types.NoDiskSpace{FileFault: types.FileFault{File: ds.Name}, Datastore: ds.Name},
				"Insufficient disk space on datastore '%s': %d bytes needed, %d free", ds.Name, size, ds.Summary.FreeSpace)
		}
	}

	// Plan the file moves first, so a conflict fails the task before anything moved.
	dirName := path.Base(cfgRel)
	var moves []fileMove
	diskFiles := map[string]bool{}
	for _, d := range disks {
		if b := diskBacking(d); b != nil {
			if local, _, err := fileOf(vm, b.FileName); err == nil {
				for _, p := range vmdkFiles(local) {
					diskFiles[p] = true
				}
			}
		}
	}
	for _, d := range disks {
		b := diskBacking(d)
		to, from := targets[d.Key], sources[d.Key]
		if b == nil || to == from {
			continue
		}
		src, _, _ := fileOf(vm, b.FileName)
		_, rel, _ := splitPath(b.FileName)
		dstPath := fmt.Sprintf("[%s] %s/%s", to.Name, dirName, path.Base(rel))
		dst, _, _ := fileOf(vm, dstPath)
		srcs, dsts := vmdkFiles(src), vmdkFiles(dst)
		for i := range srcs {
			moves = append(moves, fileMove{src: srcs[i], dst: dsts[i], dstPath: dstPath, disk: d, from: from, to: to, descriptor: i == 0})
		}
	}
	cfgSrcDir := filepath.Join(cfgFrom.Info.GetDatastoreInfo().Url, cfgRel)
	cfgDstDir := filepath.Join(cfgTo.Info.GetDatastoreInfo().Url, dirName)
	if cfgTo != cfgFrom {
		entries, _ := os.ReadDir(cfgSrcDir)
		for _, e := range entries {
			src := filepath.Join(cfgSrcDir, e.Name())
			if e.IsDir() || diskFiles[src] {
				continue // disks move (or stay) by their own rule
			}
			moves = append(moves, fileMove{src: src, dst: filepath.Join(cfgDstDir, e.Name())})
		}
	}
	for _, mv := range moves {
		if _, err := os.Stat(mv.dst); err == nil {
			return fail(&types.FileAlreadyExists{FileFault: types.FileFault{File: mv.dst}}, "file %s already exists on the target datastore", mv.dst)
		}
	}

	// Move.
	for _, mv := range moves {
		if err := moveFile(mv.src, mv.dst); err != nil && !os.IsNotExist(err) {
			return fail(&types.FileFault{File: mv.src}, "moving %s: %s", mv.src, err)
		}
	}
	for _, mv := range moves {
		if mv.disk == nil || !mv.descriptor {
			continue
		}
		to := mv.to.Self
		simulator.Map.WithLock(vm, func() {
			b := diskBacking(mv.disk)
			b.FileName = mv.dstPath
			b.Datastore = &to
		})
		adjustFree(mv.from, diskSize(mv.disk))
		adjustFree(mv.to, -diskSize(mv.disk))
		removeIfEmpty(filepath.Dir(mv.src))
	}
	if cfgTo != cfgFrom {
		_, vmxRel, _ := splitPath(vm.Config.Files.VmPathName)
		newDir := fmt.Sprintf("[%s] %s", cfgTo.Name, dirName)
		simulator.Map.WithLock(vm, func() {
			f := &vm.Config.Files
			f.VmPathName = fmt.Sprintf("%s/%s", newDir, path.Base(vmxRel))
			for _, p := range []*string{&f.LogDirectory, &f.SnapshotDirectory, &f.SuspendDirectory} {
				if name, _, ok := splitPath(*p); ok && name == cfgFrom.Name {
					*p = newDir
				}
			}
			vm.Summary.Config.VmPathName = f.VmPathName
		})
		setVMLog(vm, filepath.Join(cfgDstDir, "vmware.log"))
		removeIfEmpty(cfgSrcDir)
	}
	if spec.Host != nil || spec.Pool != nil {
		moveVMHost(vm, host, spec.Pool)
	}
	refreshDatastores(vm)
	return nil
}

func (x *ext) soapClone(m *simulator.Method) (interface{}, *failure) {
	req := m.Body.(*types.CloneVM_Task)
	vm, f := vmByRef(req.This)
	if f != nil {
		return nil, f
	}
	saved, err := copyDevices(vm.Config.Hardware.Device)
	if err != nil {
		return nil, fail(&types.SystemError{Reason: err.Error()}, "copying devices of %s: %s", vm.Name, err)
	}
	spec := req.Spec
	powerOn := spec.PowerOn
	spec.PowerOn = false
	task, err := object.NewVirtualMachine(x.c, vm.Self).Clone(x.ctx, object.NewFolder(x.c, req.Folder), req.Name, spec)
	// Whatever happened, the source keeps devices of its own.
	simulator.Map.WithLock(vm, func() { vm.Config.Hardware.Device = saved })
	if err != nil {
		return nil, fail(&types.SystemError{Reason: err.Error()}, "cloning %s: %s", vm.Name, err)
	}
	if info, err := task.WaitForResult(x.ctx, nil); err == nil && powerOn {
		if ref, ok := info.Result.(types.ManagedObjectReference); ok {
			if t, err := object.NewVirtualMachine(x.c, ref).PowerOn(x.ctx); err == nil {
				_ = t.Wait(x.ctx)
			}
		}
	}
	simulator.Map.WithLock(vm, func() { vm.Config.Hardware.Device = saved })
	return &types.CloneVM_TaskResponse{Returnval: task.Reference()}, nil
}

func (x *ext) soapDestroy(m *simulator.Method) (interface{}, *failure) {
	req := m.Body.(*types.Destroy_Task)
	vm, f := vmByRef(req.This)
	if f != nil {
		return nil, f
	}
	ref := runTask(vm.Self, "destroy", func() (types.AnyType, *failure) {
		if vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn {
			return nil, fail(&types.InvalidPowerState{RequestedState: types.VirtualMachinePowerStatePoweredOff,
				ExistingState: vm.Runtime.PowerState}, "%s is powered on: power it off first", vm.Name)
		}
		if isSecondary(vm) {
			return nil, fail(&types.InvalidState{}, "%s is an FT secondary: turn fault tolerance off on its primary", vm.Name)
		}
		if primaryInfo(vm) != nil {
			if f := x.turnOffFT(vm); f != nil {
				return nil, f
			}
		}
		return nil, x.destroyVM(vm)
	})
	return &types.Destroy_TaskResponse{Returnval: ref}, nil
}
