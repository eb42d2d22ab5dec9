package main

// Seeding vcsim from an ftbridge estate (the JSON form of the estate files the sim driver
// and every lab read): clusters and standalone hosts, datastores shared or local (one
// directory each, mounted by the hosts the estate lists), VMs with their disks where the
// estate puts them, and vsphere-ft secondaries where the estate places them. Limits are not
// enforced here: an estate may hold violations on purpose, for audits to find.

import (
	"context"
	"encoding/json"
	"fmt"
	"io/ioutil"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

const gib, mib = 1 << 30, 1 << 20

// defaultHostMemory is what a host reports when the estate gives it no memory.
const defaultHostMemory = 256 * gib

type sized map[string]interface{}

// size reads KEY (bytes), KEY_gib or KEY_mib, as estate files allow.
func (s sized) size(key string, def int64) int64 {
	num := func(v interface{}) (float64, bool) {
		f, ok := v.(float64)
		return f, ok
	}
	if v, ok := num(s[key+"_gib"]); ok {
		return int64(v * gib)
	}
	if v, ok := num(s[key+"_mib"]); ok {
		return int64(v * mib)
	}
	if v, ok := num(s[key]); ok {
		return int64(v)
	}
	return def
}

func (s sized) str(key string) string {
	if v, ok := s[key]; ok && v != nil {
		return fmt.Sprint(v)
	}
	return ""
}

func (s sized) strs(key string) []string {
	var out []string
	if v, ok := s[key].([]interface{}); ok {
		for _, x := range v {
			out = append(out, fmt.Sprint(x))
		}
	}
	return out
}

func (s sized) list(key string) []sized {
	var out []sized
	if v, ok := s[key].([]interface{}); ok {
		for _, x := range v {
			if m, ok := x.(map[string]interface{}); ok {
				out = append(out, sized(m))
			}
		}
	}
	return out
}

func (s sized) flag(key string, def bool) bool {
	if v, ok := s[key].(bool); ok {
		return v
	}
	return def
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func kindToType(kind string) string {
	switch strings.ToLower(kind) {
	case "vmfs":
		return "VMFS"
	case "nfs":
		return "NFS"
	case "nfs41":
		return "NFS41"
	case "vsan":
		return "vsan"
	case "vvol":
		return "VVOL"
	}
	return strings.ToUpper(kind)
}

func seedEstate(ctx context.Context, x *ext, file, name, root string) error {
	data, err := ioutil.ReadFile(file)
	if err != nil {
		return err
	}
	var doc struct {
		Estates map[string]sized `json:"estates"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if name == "" && len(doc.Estates) == 1 {
		for k := range doc.Estates {
			name = k
		}
	}
	est, ok := doc.Estates[name]
	if !ok {
		var names []string
		for k := range doc.Estates {
			names = append(names, k)
		}
		sort.Strings(names)
		return fmt.Errorf("%s: no estate named %q (has: %s)", file, name, strings.Join(names, ", "))
	}

	first, ok := simulator.Map.Any("Datacenter").(*simulator.Datacenter)
	if !ok {
		return fmt.Errorf("the model has no datacenter")
	}
	type dcFolders struct {
		dc      *simulator.Datacenter
		folders *object.DatacenterFolders
	}
	dcs := map[string]*dcFolders{}
	datacenter := func(dcName string) (*dcFolders, error) {
		if d, ok := dcs[dcName]; ok {
			return d, nil
		}
		dc := first
		if dcName != "" && dcName != first.Name {
			var err error
			if dc, err = x.datacenterNamed(ctx, dcName); err != nil {
				return nil, err
			}
		}
		folders, err := object.NewDatacenter(x.c, dc.Self).Folders(ctx)
		if err != nil {
			return nil, err
		}
		dcs[dcName] = &dcFolders{dc, folders}
		return dcs[dcName], nil
	}

	// Hosts, in clusters or standalone, each in its datacenter (default: the model's).
	clusters := map[string]*object.ClusterComputeResource{}
	hosts := map[string]*simulator.HostSystem{}
	var hostList []*simulator.HostSystem
	for _, h := range est.list("hosts") {
		id, hname := h.str("id"), h.str("name")
		if hname == "" {
			hname = id
		}
		where, err := datacenter(h.str("datacenter"))
		if err != nil {
			return fmt.Errorf("host %s: %w", hname, err)
		}
		spec := types.HostConnectSpec{HostName: hname}
		var task *object.Task
		if cl := h.str("cluster"); cl != "" {
			key := where.dc.Name + "/" + cl
			c, ok := clusters[key]
			if !ok {
				cfg := types.ClusterConfigSpecEx{DasConfig: &types.ClusterDasConfigInfo{Enabled: types.NewBool(true)}}
				if c, err = where.folders.HostFolder.CreateCluster(ctx, cl, cfg); err != nil {
					return fmt.Errorf("cluster %s: %w", cl, err)
				}
				clusters[key] = c
			}
			task, err = c.AddHost(ctx, spec, true, nil, nil)
		} else {
			task, err = where.folders.HostFolder.AddStandaloneHost(ctx, spec, true, nil, nil)
		}
		if err != nil {
			return fmt.Errorf("host %s: %w", hname, err)
		}
		info, err := task.WaitForResult(ctx, nil)
		if err != nil {
			return fmt.Errorf("host %s: %w", hname, err)
		}
		hs := simulator.Map.Get(info.Result.(types.ManagedObjectReference)).(*simulator.HostSystem)
		memory := h.size("memory", 0)
		if memory <= 0 { // vcsim's own 4 GiB would not hold what estates run on a host
			memory = defaultHostMemory
		}
		simulator.Map.WithLock(hs, func() {
			hs.Summary.Hardware.MemorySize = memory
			hs.Hardware.MemorySize = memory
		})
		applyHostState(hs, types.HostSystemConnectionStateConnected)
		hosts[id] = hs
		hostList = append(hostList, hs)
	}

	// Datastores: one directory each, mounted by the hosts the estate lists, in their datacenter.
	dss := map[string]*simulator.Datastore{}
	usedBy := map[string]int64{}
	for _, d := range est.list("datastores") {
		id, dname := d.str("id"), d.str("name")
		if dname == "" {
			dname = id
		}
		mountIDs := d.strs("hosts")
		if len(mountIDs) == 0 {
			return fmt.Errorf("datastore %s: no host mounts it (vSphere needs at least one)", dname)
		}
		var mountedBy []*simulator.HostSystem
		for _, hid := range mountIDs {
			h, ok := hosts[hid]
			if !ok {
				return fmt.Errorf("datastore %s: unknown host %q", dname, hid)
			}
			if len(mountedBy) > 0 && !sameDC(dcOf(h.Self), dcOf(mountedBy[0].Self)) {
				return fmt.Errorf("datastore %s: its hosts are in different datacenters", dname)
			}
			mountedBy = append(mountedBy, h)
		}
		if datastoreIn(dcOf(mountedBy[0].Self), dname) != nil {
			return fmt.Errorf("datastore %s: the datacenter has one of that name already", dname)
		}
		dir := filepath.Join(root, unsafeName.ReplaceAllString(id, "_"))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		ds := newDatastore(dcOf(mountedBy[0].Self), fmt.Sprintf("datastore-%d", 1001+len(dss)), dname, d.str("kind"), dir)
		for _, h := range mountedBy {
			mountOn(ds, h)
		}
		shared := d.flag("shared", len(mountedBy) > 1)
		capacity := d.size("capacity", 0)
		thin := d.flag("thin", false) || thinKinds[strings.ToLower(d.str("kind"))]
		simulator.Map.WithLock(ds, func() {
			ds.Summary.MultipleHostAccess = types.NewBool(shared)
			ds.Summary.Capacity = capacity
			ds.Summary.FreeSpace = capacity
			ds.Capability.PerFileThinProvisioningSupported = thin
			info := ds.Info.GetDatastoreInfo()
			info.FreeSpace = capacity
			info.MaxFileSize = capacity
		})
		dss[id] = ds
	}

	nets, err := x.seedNetworks(ctx, est, hosts)
	if err != nil {
		return err
	}

	// VMs, powered as the estate says, then their FT secondaries.
	type pending struct {
		vm    *simulator.VirtualMachine
		keys  map[string]int32
		specs []sized
	}
	var withFT []pending
	vms := map[string]*simulator.VirtualMachine{}
	for _, v := range est.list("vms") {
		host, ok := hosts[v.str("host")]
		if !ok {
			host = nil
		}
		where := dcs[""]
		if host != nil {
			for _, d := range dcs {
				if sameDC(d.dc, dcOf(host.Self)) {
					where = d
				}
			}
		}
		if where == nil {
			if where, err = datacenter(""); err != nil {
				return err
			}
		}
		vm, keys, err := x.seedVM(ctx, where.folders, v, hosts, dss, usedBy)
		if err != nil {
			return err
		}
		if err := x.shapeVM(vm, v, keys, nets, dss, hostList); err != nil {
			return err
		}
		vms[vm.Name] = vm
		if secs := v.list("secondaries"); len(secs) > 0 {
			withFT = append(withFT, pending{vm, keys, secs})
		}
	}
	for _, p := range withFT {
		for _, s := range p.specs {
			if mech := s.str("mechanism"); mech != "vsphere-ft" {
				fmt.Fprintf(os.Stderr, "ftbridge-vcsim: %s: secondary mechanism %q has no vSphere form; skipped\n", p.vm.Name, mech)
				continue
			}
			if err := x.seedSecondary(p.vm, p.keys, s, hosts, dss, usedBy); err != nil {
				return err
			}
		}
	}

	// Free space as the estate computes it: capacity less reserved less what lives there;
	// what is provisioned beyond what is used is summary.uncommitted.
	for _, d := range est.list("datastores") {
		ds := dss[d.str("id")]
		capacity := d.size("capacity", 0)
		free := d.size("free", capacity-d.size("reserved", 0)-usedBy[d.str("id")])
		if free < 0 {
			free = 0
		}
		uncommitted := int64(0)
		if c := d.size("committed", -1); c >= 0 && c > capacity-free {
			uncommitted = c - (capacity - free)
		}
		simulator.Map.WithLock(ds, func() {
			ds.Summary.FreeSpace = free
			ds.Summary.Uncommitted = uncommitted
			ds.Info.GetDatastoreInfo().FreeSpace = free
		})
		if !d.flag("accessible", true) {
			applyDatastoreAccessible(ds, false)
		}
	}
	for _, h := range est.list("hosts") {
		hs := hosts[h.str("id")]
		switch h.str("state") {
		case "down":
			_ = x.setHostState(hs.Name, "failed")
		case "unreachable":
			_ = x.setHostState(hs.Name, "partitioned")
		case "maintenance":
			simulator.Map.WithLock(hs, func() { hs.Runtime.InMaintenanceMode = true })
		}
	}
	x.faults = faultState{} // the estate's states are where it starts, not faults to undo

	// The lab's own shapes (VsphereLab options): refused, orphaned and inaccessible VMs.
	opts := sized{}
	if m, ok := est["vsphere"].(map[string]interface{}); ok {
		opts = sized(m)
	}
	x.refused = map[string]bool{}
	for _, n := range opts.strs("refused") {
		if vms[n] == nil {
			return fmt.Errorf("vsphere.refused: no VM named %q", n)
		}
		x.refused[n] = true
	}
	for key, state := range map[string]types.VirtualMachineConnectionState{
		"orphaned": types.VirtualMachineConnectionStateOrphaned, "inaccessible": types.VirtualMachineConnectionStateInaccessible} {
		for _, n := range opts.strs(key) {
			vm := vms[n]
			if vm == nil {
				return fmt.Errorf("vsphere.%s: no VM named %q", key, n)
			}
			makeUnreadable(vm, state)
		}
	}
	if n := opts.size("page_size", 0); n > 0 {
		x.pageSize = int(n)
	}
	return nil
}

// thinKinds: datastore types on which vSphere keeps a disk thin per file (vSphere API,
// DatastoreCapability.perFileThinProvisioningSupported; VMFS, NFS, vSAN and vVols do).
var thinKinds = map[string]bool{"vmfs": true, "nfs": true, "nfs41": true, "vsan": true, "vvol": true}

// newDatastore puts a datastore with a vCenter-like moref ("datastore-1001") in the
// datacenter's datastore folder; vcsim's own would carry its local path in the moref.
func newDatastore(dc *simulator.Datacenter, moid, name, kind, dir string) *simulator.Datastore {
	ds := &simulator.Datastore{}
	ds.Self = types.ManagedObjectReference{Type: "Datastore", Value: moid}
	ds.Name = name
	base := types.DatastoreInfo{Name: name, Url: dir}
	switch strings.ToLower(kind) {
	case "nfs", "nfs41":
		ds.Info = &types.NasDatastoreInfo{DatastoreInfo: base, Nas: &types.HostNasVolume{
			HostFileSystemVolume: types.HostFileSystemVolume{Type: kindToType(kind), Name: name},
			RemoteHost:           "nfs.lab.invalid", RemotePath: "/" + name}}
	default:
		ds.Info = &types.LocalDatastoreInfo{DatastoreInfo: base, Path: dir}
	}
	ds.Summary = types.DatastoreSummary{
		Datastore: &ds.Self, Name: name, Url: dir, Type: kindToType(kind), Accessible: true,
		MaintenanceMode: string(types.DatastoreSummaryMaintenanceModeStateNormal),
	}
	ds.Capability = types.DatastoreCapability{DirectoryHierarchySupported: true, PerFileThinProvisioningSupported: thinKinds[strings.ToLower(kind)],
		TopLevelDirectoryCreateSupported: types.NewBool(true)}
	folder := simulator.Map.Get(dc.DatastoreFolder).(*simulator.Folder)
	simulator.Map.PutEntity(folder, ds)
	simulator.Map.AddReference(folder, &folder.ChildEntity, ds.Self)
	simulator.Map.AddReference(dc, &dc.Datastore, ds.Self)
	browser := &simulator.HostDatastoreBrowser{}
	browser.Datastore = []types.ManagedObjectReference{ds.Self}
	ds.Browser = simulator.Map.Put(browser).Reference()
	return ds
}

// mountOn makes a host mount a datastore: the host's and its compute resource's lists and
// the datastore's own host list.
func mountOn(ds *simulator.Datastore, h *simulator.HostSystem) {
	if !mounts(h, ds) {
		if ref := h.ConfigManager.DatastoreSystem; ref != nil {
			if system, ok := simulator.Map.Get(*ref).(*simulator.HostDatastoreSystem); ok {
				simulator.Map.AddReference(system, &system.Datastore, ds.Self)
			}
		}
		simulator.Map.AddReference(h, &h.Datastore, ds.Self)
		if h.Parent != nil {
			switch cr := simulator.Map.Get(*h.Parent).(type) {
			case *simulator.ClusterComputeResource:
				simulator.Map.AddReference(cr, &cr.Datastore, ds.Self)
			case *mo.ComputeResource:
				simulator.Map.AddReference(cr, &cr.Datastore, ds.Self)
			}
		}
	}
	addMount(ds, h.Self)
}

func (x *ext) seedVM(ctx context.Context, folders *object.DatacenterFolders, v sized,
	hosts map[string]*simulator.HostSystem, dss map[string]*simulator.Datastore, usedBy map[string]int64) (*simulator.VirtualMachine, map[string]int32, error) {
	name := v.str("name")
	if name == "" {
		name = v.str("id")
	}
	disks := v.list("disks")
	cfgID := v.str("config_datastore")
	if cfgID == "" && len(disks) > 0 {
		cfgID = disks[0].str("datastore")
	}
	cfg, ok := dss[cfgID]
	if !ok {
		return nil, nil, fmt.Errorf("vm %s: unknown config datastore %q", name, cfgID)
	}
	host, ok := hosts[v.str("host")]
	if !ok {
		for _, h := range hosts { // no host given: one that mounts the config datastore
			if mounts(h, cfg) {
				host = h
				break
			}
		}
	}
	if host == nil {
		return nil, nil, fmt.Errorf("vm %s: no host", name)
	}

	var devices object.VirtualDeviceList
	var controller types.BaseVirtualController
	var ids []string
	for i, d := range disks {
		if i%15 == 0 {
			scsi, err := devices.CreateSCSIController("pvscsi")
			if err != nil {
				return nil, nil, err
			}
			scsi.GetVirtualDevice().Key = int32(1000 + i/15) // vCenter's numbering
			devices = append(devices, scsi)
			controller = scsi.(types.BaseVirtualController)
		}
		ds, ok := dss[d.str("datastore")]
		if !ok {
			return nil, nil, fmt.Errorf("vm %s: disk %d: unknown datastore %q", name, i, d.str("datastore"))
		}
		if !mounts(host, ds) {
			return nil, nil, fmt.Errorf("vm %s: host %s does not mount datastore %s", name, host.Name, ds.Name)
		}
		if err := os.MkdirAll(filepath.Join(ds.Info.GetDatastoreInfo().Url, name), 0o700); err != nil {
			return nil, nil, err
		}
		file := fmt.Sprintf("[%s] %s/%s.vmdk", ds.Name, name, name)
		if i > 0 {
			file = fmt.Sprintf("[%s] %s/%s_%d.vmdk", ds.Name, name, name, i)
		}
		disk := devices.CreateDisk(controller, ds.Self, file)
		disk.Key = int32(2000 + i)
		size := d.size("size", gib)
		disk.CapacityInBytes = size
		disk.CapacityInKB = size / 1024
		devices = append(devices, disk)
		id := d.str("id")
		if id == "" {
			id = fmt.Sprint(i)
		}
		ids = append(ids, id)
		usedBy[d.str("datastore")] += size
	}
	changes, err := devices.ConfigSpec(types.VirtualDeviceConfigSpecOperationAdd)
	if err != nil {
		return nil, nil, err
	}
	for _, c := range changes {
		if _, ok := c.GetVirtualDeviceConfigSpec().Device.(*types.VirtualDisk); ok {
			c.GetVirtualDeviceConfigSpec().FileOperation = types.VirtualDeviceConfigSpecFileOperationCreate
		}
	}
	memory := v.size("memory", 0) / mib
	if memory <= 0 {
		memory = 1024
	}
	cpus := int32(v.size("vcpus", 1))
	spec := types.VirtualMachineConfigSpec{
		Name:         name,
		GuestId:      string(types.VirtualMachineGuestOsIdentifierOtherGuest),
		NumCPUs:      cpus,
		MemoryMB:     memory,
		Files:        &types.VirtualMachineFileInfo{VmPathName: fmt.Sprintf("[%s] %s/%s.vmx", cfg.Name, name, name)},
		DeviceChange: changes,
	}
	hostObj := object.NewHostSystem(x.c, host.Self)
	pool, err := hostObj.ResourcePool(ctx)
	if err != nil {
		return nil, nil, err
	}
	task, err := folders.VmFolder.CreateVM(ctx, spec, pool, hostObj)
	if err != nil {
		return nil, nil, fmt.Errorf("vm %s: %w", name, err)
	}
	info, err := task.WaitForResult(ctx, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("vm %s: %w", name, err)
	}
	vm := simulator.Map.Get(info.Result.(types.ManagedObjectReference)).(*simulator.VirtualMachine)
	obj := object.NewVirtualMachine(x.c, vm.Self)
	switch v.str("power") {
	case "", "on":
		if t, err := obj.PowerOn(ctx); err == nil {
			_ = t.Wait(ctx)
		}
	case "suspended":
		if t, err := obj.PowerOn(ctx); err == nil {
			_ = t.Wait(ctx)
		}
		if t, err := obj.Suspend(ctx); err == nil {
			_ = t.Wait(ctx)
		}
	}
	// Estate disk ids -> device keys, by order (vcsim numbers the devices itself).
	keys := map[string]int32{}
	for i, disk := range disksOf(vm) {
		if i < len(ids) {
			keys[ids[i]] = disk.Key
		}
	}
	return vm, keys, nil
}

func (x *ext) seedSecondary(vm *simulator.VirtualMachine, keys map[string]int32, s sized,
	hosts map[string]*simulator.HostSystem, dss map[string]*simulator.Datastore, usedBy map[string]int64) error {
	pl := &ftPlacement{disks: map[int32]*simulator.Datastore{}}
	host, ok := hosts[s.str("host")]
	if !ok {
		return fmt.Errorf("vm %s: vsphere-ft secondary needs a known host (got %q)", vm.Name, s.str("host"))
	}
	pl.host = host
	sizes := map[int32]int64{}
	for _, d := range disksOf(vm) {
		sizes[d.Key] = diskSize(d)
	}
	if m, ok := s["disks"].(map[string]interface{}); ok {
		for id, dsv := range m {
			key, ok := keys[id]
			ds, ok2 := dss[fmt.Sprint(dsv)]
			if !ok || !ok2 {
				return fmt.Errorf("vm %s: secondary disk %s -> %v: unknown disk or datastore", vm.Name, id, dsv)
			}
			pl.disks[key] = ds
			usedBy[fmt.Sprint(dsv)] += sizes[key]
		}
	}
	first := ""
	for _, v := range s["disks"].(map[string]interface{}) {
		first = fmt.Sprint(v)
		break
	}
	cfgID := s.str("config_datastore")
	if cfgID == "" {
		cfgID = first
	}
	metaID := s.str("metadata_datastore")
	if metaID == "" {
		metaID = cfgID
	}
	if pl.config, ok = dss[cfgID]; !ok {
		return fmt.Errorf("vm %s: secondary config datastore %q unknown", vm.Name, cfgID)
	}
	if pl.meta, ok = dss[metaID]; !ok {
		return fmt.Errorf("vm %s: secondary metadata datastore %q unknown", vm.Name, metaID)
	}
	for _, d := range disksOf(vm) { // FT gives every disk a copy
		if _, ok := pl.disks[d.Key]; !ok {
			return fmt.Errorf("vm %s: the vsphere-ft secondary must place every disk", vm.Name)
		}
	}
	if _, f := x.createSecondary(vm, pl, false); f != nil {
		return fmt.Errorf("vm %s: secondary: %s", vm.Name, f.msg)
	}
	switch s.str("state") {
	case "syncing":
		setFTState(vm, types.VirtualMachineFaultToleranceStateStarting)
	case "stale":
		setFTState(vm, types.VirtualMachineFaultToleranceStateDisabled)
	}
	return nil
}
