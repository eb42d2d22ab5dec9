package main

// Small helpers over vcsim's objects: lookups that fail with a fault instead of panicking,
// datastore paths to files, free-space bookkeeping, device copies.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"syscall"
	"unsafe"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
	"github.com/vmware/govmomi/vim25/xml"
)

func vmByRef(ref types.ManagedObjectReference) (*simulator.VirtualMachine, *failure) {
	if vm, ok := simulator.Map.Get(ref).(*simulator.VirtualMachine); ok && vm.Config != nil {
		return vm, nil
	}
	return nil, fail(&types.ManagedObjectNotFound{Obj: ref}, "The object '%s' has already been deleted or has not been completely created", ref)
}

func hostByRef(ref *types.ManagedObjectReference) *simulator.HostSystem {
	if ref == nil {
		return nil
	}
	h, _ := simulator.Map.Get(*ref).(*simulator.HostSystem)
	return h
}

func dsByRef(ref *types.ManagedObjectReference) *simulator.Datastore {
	if ref == nil {
		return nil
	}
	d, _ := simulator.Map.Get(*ref).(*simulator.Datastore)
	return d
}

func hostUp(h *simulator.HostSystem) bool {
	return h != nil && h.Runtime.ConnectionState == types.HostSystemConnectionStateConnected && !h.Runtime.InMaintenanceMode
}

func hostStateText(h *simulator.HostSystem) string {
	if h.Runtime.InMaintenanceMode {
		return "in maintenance mode"
	}
	return string(h.Runtime.ConnectionState)
}

func mounts(h *simulator.HostSystem, ds *simulator.Datastore) bool {
	for _, ref := range h.Datastore {
		if ref == ds.Self {
			return true
		}
	}
	return false
}

func disksOf(vm *simulator.VirtualMachine) []*types.VirtualDisk {
	var out []*types.VirtualDisk
	for _, d := range vm.Config.Hardware.Device {
		if disk, ok := d.(*types.VirtualDisk); ok {
			out = append(out, disk)
		}
	}
	return out
}

func diskBacking(d *types.VirtualDisk) *types.VirtualDeviceFileBackingInfo {
	if b, ok := d.Backing.(types.BaseVirtualDeviceFileBackingInfo); ok {
		return b.GetVirtualDeviceFileBackingInfo()
	}
	return nil
}

func diskSize(d *types.VirtualDisk) int64 {
	if d.CapacityInBytes > 0 {
		return d.CapacityInBytes
	}
	return d.CapacityInKB * 1024
}

func splitPath(p string) (ds string, rel string, ok bool) {
	var dp object.DatastorePath
	if !dp.FromString(p) {
		return "", "", false
	}
	return dp.Datastore, dp.Path, true
}

// fileOf is the local file behind a "[datastore] path" of a VM (the name is looked up in
// the VM's datacenter: see dc.go).
func fileOf(vm *simulator.VirtualMachine, p string) (string, *simulator.Datastore, error) {
	name, rel, ok := splitPath(p)
	if !ok {
		return "", nil, fmt.Errorf("not a datastore path: %q", p)
	}
	ds := datastoreIn(dcOf(vm.Self), name)
	if ds == nil {
		return "", nil, fmt.Errorf("no datastore named %q in the datacenter of %s", name, vm.Name)
	}
	return filepath.Join(ds.Info.GetDatastoreInfo().Url, rel), ds, nil
}

// configDir is the directory ("[ds] dir") of a VM's .vmx file.
func configDir(vm *simulator.VirtualMachine) (string, string) {
	name, rel, _ := splitPath(vm.Config.Files.VmPathName)
	if path.Ext(rel) == ".vmx" {
		rel = path.Dir(rel)
	}
	return name, rel
}

func adjustFree(ds *simulator.Datastore, delta int64) {
	if ds == nil || delta == 0 {
		return
	}
	simulator.Map.WithLock(ds, func() {
		ds.Summary.FreeSpace += delta
		if ds.Summary.FreeSpace > ds.Summary.Capacity {
			ds.Summary.FreeSpace = ds.Summary.Capacity
		}
		ds.Info.GetDatastoreInfo().FreeSpace = ds.Summary.FreeSpace
	})
}

// vmdkFiles are a disk's descriptor and extent, as vcsim writes them.
func vmdkFiles(file string) []string {
	ext := filepath.Ext(file)
	if ext != ".vmdk" {
		return []string{file}
	}
	return []string{file, file[:len(file)-len(ext)] + "-flat.vmdk"}
}

func moveFile(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	err := os.Rename(src, dst)
	if err == nil || !errors.Is(err, syscall.EXDEV) {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err = io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err = out.Close(); err != nil {
		return err
	}
	return os.Remove(src)
}

// removeIfEmpty removes a directory that holds nothing any more.
func removeIfEmpty(dir string) {
	entries, err := os.ReadDir(dir)
	if err == nil && len(entries) == 0 {
		_ = os.Remove(dir)
	}
}

// setVMLog points vcsim's private per-VM log path at the VM's new directory, so a VM whose
// files moved does not write (or fail to write) its log in the old place.
func setVMLog(vm *simulator.VirtualMachine, file string) {
	f := reflect.ValueOf(vm).Elem().FieldByName("log")
	if !f.IsValid() || f.Kind() != reflect.String {
		return
	}
	reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().SetString(file)
}

// copyDevices deep-copies a device list through its SOAP encoding: vcsim keeps pointers,
// and a clone or secondary that shares them would rewrite the source VM's disks.
func copyDevices(devices []types.BaseVirtualDevice) ([]types.BaseVirtualDevice, error) {
	data, err := xml.Marshal(types.ArrayOfVirtualDevice{VirtualDevice: devices})
	if err != nil {
		return nil, err
	}
	var out types.ArrayOfVirtualDevice
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.TypeFunc = types.TypeFunc()
	if err := dec.Decode(&out); err != nil {
		return nil, err
	}
	return out.VirtualDevice, nil
}

// refreshDatastores makes VirtualMachine.datastore and Datastore.vm agree with where the
// VM's config and disks now are, and rebuilds vcsim's file layout of the VM.
func refreshDatastores(vm *simulator.VirtualMachine) {
	want := map[types.ManagedObjectReference]bool{}
	var order []types.ManagedObjectReference
	dc := dcOf(vm.Self)
	add := func(p string) {
		name, _, ok := splitPath(p)
		if !ok {
			return
		}
		if ds := datastoreIn(dc, name); ds != nil && !want[ds.Self] {
			want[ds.Self] = true
			order = append(order, ds.Self)
		}
	}
	add(vm.Config.Files.VmPathName)
	flat := true
	for _, d := range disksOf(vm) {
		if b := diskBacking(d); b != nil {
			add(b.FileName)
		}
		fb, ok := d.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
		flat = flat && ok
		for ok && fb.Parent != nil { // a linked clone's base disk is a file the VM uses too
			fb = fb.Parent
			add(fb.FileName)
		}
	}
	for _, d := range vm.Config.Hardware.Device {
		if cd, ok := d.(*types.VirtualCdrom); ok {
			if iso, ok := cd.Backing.(*types.VirtualCdromIsoBackingInfo); ok {
				add(iso.FileName)
			}
		}
	}
	check := append([]types.ManagedObjectReference(nil), order...)
	f := vm.Config.Files
	for _, p := range []string{f.LogDirectory, f.SnapshotDirectory, f.SuspendDirectory, f.FtMetadataDirectory} {
		if name, _, ok := splitPath(p); ok {
			if ds := datastoreIn(dc, name); ds != nil {
				check = append(check, ds.Self)
			}
		}
	}
	if vm.Runtime.Host != nil {
		// vcsim lays out only flat disks (it panics on another backing)
		if h := hostByRef(vm.Runtime.Host); h != nil && flat && allMounted(h, check) {
			_ = vm.RefreshStorageInfo(&simulator.Context{Map: simulator.Map}, &types.RefreshStorageInfo{This: vm.Self})
		}
	}
	old := vm.Datastore
	for _, ref := range old {
		if !want[ref] {
			if ds := dsByRef(&ref); ds != nil {
				simulator.Map.RemoveReference(ds, &ds.Vm, vm.Self)
			}
		}
	}
	for _, ref := range order {
		if ds := dsByRef(&ref); ds != nil {
			simulator.Map.AddReference(ds, &ds.Vm, vm.Self)
		}
	}
	simulator.Map.WithLock(vm, func() { vm.Datastore = order })
}

func allMounted(h *simulator.HostSystem, refs []types.ManagedObjectReference) bool {
	for _, ref := range refs {
		ds := dsByRef(&ref)
		if ds == nil || !mounts(h, ds) {
			return false
		}
	}
	return true
}

// moveVMHost moves a VM between hosts' VM lists (and into the new host's root pool when
// the host belongs to another compute resource).
func moveVMHost(vm *simulator.VirtualMachine, to *simulator.HostSystem, pool *types.ManagedObjectReference) {
	from := hostByRef(vm.Runtime.Host)
	if from != nil && from.Self != to.Self {
		simulator.Map.RemoveReference(from, &from.Vm, vm.Self)
	}
	simulator.Map.AppendReference(to, &to.Vm, vm.Self)
	ref := to.Self
	if pool == nil && from != nil && from.Parent != nil && to.Parent != nil && *from.Parent != *to.Parent {
		pool = rootPool(to)
	}
	if pool != nil && vm.ResourcePool != nil && *pool != *vm.ResourcePool {
		if old, ok := simulator.Map.Get(*vm.ResourcePool).(*simulator.ResourcePool); ok {
			simulator.Map.RemoveReference(old, &old.Vm, vm.Self)
		}
		if np, ok := simulator.Map.Get(*pool).(*simulator.ResourcePool); ok {
			simulator.Map.AddReference(np, &np.Vm, vm.Self)
		}
	}
	simulator.Map.WithLock(vm, func() {
		vm.Runtime.Host = &ref
		vm.Summary.Runtime.Host = &ref
		if pool != nil {
			p := *pool
			vm.ResourcePool = &p
		}
	})
}

func rootPool(h *simulator.HostSystem) *types.ManagedObjectReference {
	if h.Parent == nil {
		return nil
	}
	switch cr := simulator.Map.Get(*h.Parent).(type) {
	case *simulator.ClusterComputeResource:
		return cr.ResourcePool
	case *mo.ComputeResource:
		return cr.ResourcePool
	}
	return nil
}

func setPower(vm *simulator.VirtualMachine, st types.VirtualMachinePowerState) {
	simulator.Map.WithLock(vm, func() {
		vm.Runtime.PowerState = st
		vm.Summary.Runtime.PowerState = st
	})
}

func setFTState(vm *simulator.VirtualMachine, st types.VirtualMachineFaultToleranceState) {
	simulator.Map.WithLock(vm, func() {
		vm.Runtime.FaultToleranceState = st
		vm.Summary.Runtime.FaultToleranceState = st
	})
}
