package main

// Shapes a real estate has and vcsim's CreateVM does not make, written into the VMs the
// estate seeds (the estate file says where; see README.md):
//
//   - networks: standard portgroups (a Network per datacenter, listed by each host that has
//     it, with the VLAN in the host's config.network.portgroup[].spec.vlanId) and distributed
//     portgroups (on one distributed switch per datacenter, VLAN in
//     config.defaultPortConfig.vlan.vlanId), and NICs whose backing points at them
//     (VirtualEthernetCardNetworkBackingInfo / VirtualEthernetCardDistributedVirtualPortBackingInfo);
//   - linked clones: a disk whose backing has a parent (the base disk, on another datastore);
//   - mounted ISO images: a VirtualCdrom with a VirtualCdromIsoBackingInfo on a datastore;
//   - raw device mappings: VirtualDiskRawDiskMappingVer1BackingInfo in virtual ("rdm") or
//     physical ("lun") compatibility mode;
//   - thin disks (backing.thinProvisioned) and the bytes a disk's files take (the flat file's
//     size, which vcsim reports in layoutEx.file);
//   - extension-managed VMs (config.managedBy: extensionKey and type, as vSphere ESX Agent
//     Manager sets it on vCLS VMs), BIOS and instance UUIDs;
//   - VMs vCenter lists as orphaned or inaccessible (runtime.connectionState; an inaccessible
//     VM has no config: "no configuration can be returned", vSphere API,
//     VirtualMachineConnectionState).
//
// Devices are written into the VM after vcsim created it, as vCenter would show them; vcsim's
// own device configuration handles neither RDM backings nor distributed port backings.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

type netRef struct {
	ref    types.ManagedObjectReference
	name   string
	kind   string // portgroup | dvportgroup
	dvsID  string // dvportgroup: the switch's uuid
	pgKey  string
	hosts  []*simulator.HostSystem
	dcName string
}

// seedNetworks creates the estate's networks in the datacenter of their first host.
func (x *ext) seedNetworks(ctx context.Context, est sized, hosts map[string]*simulator.HostSystem) (map[string]*netRef, error) {
	out := map[string]*netRef{}
	switches := map[string]*object.DistributedVirtualSwitch{}
	for _, n := range est.list("networks") {
		id, name, kind := n.str("id"), n.str("name"), n.str("kind")
		if name == "" {
			name = id
		}
		var hs []*simulator.HostSystem
		for _, hid := range n.strs("hosts") {
			h, ok := hosts[hid]
			if !ok {
				return nil, fmt.Errorf("network %s: unknown host %q", name, hid)
			}
			hs = append(hs, h)
		}
		if len(hs) == 0 {
			for _, h := range hosts {
				hs = append(hs, h)
			}
		}
		dc := dcOf(hs[0].Self)
		if dc == nil {
			return nil, fmt.Errorf("network %s: its host has no datacenter", name)
		}
		vlan := int32(n.size("vlan", 0))
		nr := &netRef{name: name, kind: kind, hosts: hs, dcName: dc.Name}
		switch kind {
		case "dvportgroup":
			dvs, ok := switches[dc.Name]
			if !ok {
				var err error
				if dvs, err = x.createSwitch(ctx, dc, hosts); err != nil {
					return nil, fmt.Errorf("network %s: %w", name, err)
				}
				switches[dc.Name] = dvs
			}
			spec := types.DVPortgroupConfigSpec{Name: name, Type: string(types.DistributedVirtualPortgroupPortgroupTypeEarlyBinding),
				NumPorts: 32, DefaultPortConfig: &types.VMwareDVSPortSetting{
					Vlan: &types.VmwareDistributedVirtualSwitchVlanIdSpec{VlanId: vlan}}}
			task, err := dvs.AddPortgroup(ctx, []types.DVPortgroupConfigSpec{spec})
			if err == nil {
				err = task.Wait(ctx)
			}
			if err != nil {
				return nil, fmt.Errorf("network %s: %w", name, err)
			}
			sw := simulator.Map.Get(dvs.Reference()).(*simulator.DistributedVirtualSwitch)
			for _, ref := range sw.Portgroup {
				if pg, ok := simulator.Map.Get(ref).(*simulator.DistributedVirtualPortgroup); ok && pg.Name == name {
					nr.ref, nr.pgKey, nr.dvsID = pg.Self, pg.Key, sw.Uuid
					var refs []types.ManagedObjectReference
					for _, h := range hs {
						refs = append(refs, h.Self)
					}
					simulator.Map.WithLock(pg, func() { pg.Host = refs })
				}
			}
			if nr.pgKey == "" {
				return nil, fmt.Errorf("network %s: the portgroup was not created", name)
			}
		default: // a standard portgroup, on vSwitch0 of every host that has it
			net := &mo.Network{}
			net.Name = name
			folder := simulator.Map.Get(dc.NetworkFolder).(*simulator.Folder)
			simulator.Map.PutEntity(folder, net)
			simulator.Map.AddReference(folder, &folder.ChildEntity, net.Self)
			simulator.Map.AddReference(dc, &dc.Network, net.Self)
			var refs []types.ManagedObjectReference
			for _, h := range hs {
				refs = append(refs, h.Self)
				h := h
				simulator.Map.WithLock(h, func() {
					if h.Config != nil && h.Config.Network != nil {
						h.Config.Network.Portgroup = append(h.Config.Network.Portgroup, types.HostPortGroup{
							Key:  "key-vim.host.PortGroup-" + name,
							Spec: types.HostPortGroupSpec{Name: name, VlanId: vlan, VswitchName: "vSwitch0"},
						})
					}
				})
			}
			net.Host = refs
			nr.ref, nr.kind = net.Self, "portgroup"
		}
		for _, h := range hs {
			simulator.Map.AddReference(h, &h.Network, nr.ref)
		}
		out[id] = nr
	}
	return out, nil
}

func (x *ext) createSwitch(ctx context.Context, dc *simulator.Datacenter, hosts map[string]*simulator.HostSystem) (*object.DistributedVirtualSwitch, error) {
	folder := object.NewFolder(x.c, dc.NetworkFolder)
	task, err := folder.CreateDVS(ctx, types.DVSCreateSpec{ConfigSpec: &types.DVSConfigSpec{Name: "dvs-" + dc.Name}})
	if err != nil {
		return nil, err
	}
	info, err := task.WaitForResult(ctx, nil)
	if err != nil {
		return nil, err
	}
	dvs := object.NewDistributedVirtualSwitch(x.c, info.Result.(types.ManagedObjectReference))
	// every host of the datacenter joins (vcsim's CreateDVS ignores the spec's hosts), and the
	// switch's uplink portgroup says it is one, as vCenter's does (DVPortgroupConfigInfo.uplink)
	join := &types.DVSConfigSpec{}
	for _, h := range hosts {
		if sameDC(dcOf(h.Self), dc) {
			join.Host = append(join.Host, types.DistributedVirtualSwitchHostMemberConfigSpec{Operation: "add", Host: h.Self})
		}
	}
	if t, err := dvs.Reconfigure(ctx, join); err != nil {
		return nil, err
	} else if err := t.Wait(ctx); err != nil {
		return nil, err
	}
	sw := simulator.Map.Get(dvs.Reference()).(*simulator.DistributedVirtualSwitch)
	for _, ref := range sw.Portgroup {
		if pg, ok := simulator.Map.Get(ref).(*simulator.DistributedVirtualPortgroup); ok {
			simulator.Map.WithLock(pg, func() { pg.Config.Uplink = types.NewBool(true) })
		}
	}
	return dvs, nil
}

// defaultNetwork is the "VM Network" portgroup of a datacenter, made when it has none.
func defaultNetwork(dc *simulator.Datacenter, hosts []*simulator.HostSystem) *netRef {
	for _, ref := range dc.Network {
		if n, ok := simulator.Map.Get(ref).(mo.Entity); ok && n.Entity().Name == "VM Network" {
			return &netRef{ref: ref, name: "VM Network", kind: "portgroup"}
		}
	}
	net := &mo.Network{}
	net.Name = "VM Network"
	folder := simulator.Map.Get(dc.NetworkFolder).(*simulator.Folder)
	simulator.Map.PutEntity(folder, net)
	simulator.Map.AddReference(folder, &folder.ChildEntity, net.Self)
	simulator.Map.AddReference(dc, &dc.Network, net.Self)
	for _, h := range hosts {
		net.Host = append(net.Host, h.Self)
		simulator.Map.AddReference(h, &h.Network, net.Self)
	}
	return &netRef{ref: net.Self, name: "VM Network", kind: "portgroup"}
}

var nicTypes = map[string]func() types.BaseVirtualEthernetCard{
	"vmxnet3": func() types.BaseVirtualEthernetCard { return &types.VirtualVmxnet3{} },
	"e1000":   func() types.BaseVirtualEthernetCard { return &types.VirtualE1000{} },
	"e1000e":  func() types.BaseVirtualEthernetCard { return &types.VirtualE1000e{} },
	"vmxnet2": func() types.BaseVirtualEthernetCard { return &types.VirtualVmxnet2{} },
	"pcnet32": func() types.BaseVirtualEthernetCard { return &types.VirtualPCNet32{} },
}

// shapeVM writes the estate's NICs, base disks, ISO images, RDMs, thin flags, allocation,
// managedBy and UUIDs into a VM vcsim has created.
func (x *ext) shapeVM(vm *simulator.VirtualMachine, v sized, keys map[string]int32, nets map[string]*netRef,
	dss map[string]*simulator.Datastore, hosts []*simulator.HostSystem) error {
	dc := dcOf(vm.Self)
	var devices []types.BaseVirtualDevice
	for _, d := range vm.Config.Hardware.Device {
		if _, nic := d.(types.BaseVirtualEthernetCard); !nic {
			devices = append(devices, d)
		}
	}
	var networks []types.ManagedObjectReference
	nics := v.list("nics")
	if len(nics) == 0 && dc != nil {
		nics = []sized{{"id": "", "network": "", "model": "e1000"}}
	}
	for i, n := range nics {
		model := n.str("model")
		if model == "" {
			model = "vmxnet3"
		}
		mk, ok := nicTypes[model]
		if !ok {
			return fmt.Errorf("vm %s: nic %d: model %q is not one of vmxnet3, e1000, e1000e, vmxnet2, pcnet32", vm.Name, i, model)
		}
		nic := mk()
		card := nic.GetVirtualEthernetCard()
		card.Key = int32(4000 + i)
		card.ControllerKey = 100
		unit := int32(7 + i)
		card.UnitNumber = &unit
		card.AddressType = string(types.VirtualEthernetCardMacTypeGenerated)
		card.MacAddress = n.str("mac")
		if card.MacAddress == "" {
			card.MacAddress = fmt.Sprintf("00:50:56:%02x:%02x:%02x", (len(vm.Self.Value)+i)&0xff, i&0xff, hash8(vm.Self.Value))
		}
		card.Connectable = &types.VirtualDeviceConnectInfo{StartConnected: true, Connected: true, AllowGuestControl: true}
		var nr *netRef
		if id := n.str("network"); id != "" {
			if nr, ok = nets[id]; !ok {
				return fmt.Errorf("vm %s: nic %d: unknown network %q", vm.Name, i, id)
			}
		} else if dc != nil {
			nr = defaultNetwork(dc, hosts)
		}
		if nr != nil {
			if nr.kind == "dvportgroup" {
				card.Backing = &types.VirtualEthernetCardDistributedVirtualPortBackingInfo{
					Port: types.DistributedVirtualSwitchPortConnection{SwitchUuid: nr.dvsID, PortgroupKey: nr.pgKey}}
			} else {
				ref := nr.ref
				card.Backing = &types.VirtualEthernetCardNetworkBackingInfo{
					VirtualDeviceDeviceBackingInfo: types.VirtualDeviceDeviceBackingInfo{DeviceName: nr.name},
					Network:                        &ref}
			}
			networks = append(networks, nr.ref)
		}
		devices = append(devices, nic.(types.BaseVirtualDevice))
	}

	byKey := map[int32]*types.VirtualDisk{}
	var order []*types.VirtualDisk
	for _, d := range devices {
		if disk, ok := d.(*types.VirtualDisk); ok {
			byKey[disk.Key] = disk
			order = append(order, disk)
		}
	}
	for i, d := range v.list("disks") {
		id := d.str("id")
		if id == "" {
			id = fmt.Sprint(i)
		}
		disk := byKey[keys[id]]
		if disk == nil {
			continue
		}
		b, ok := disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
		if !ok {
			continue
		}
		switch kind := d.str("kind"); kind {
		case "rdm", "lun":
			mode := types.VirtualDiskCompatibilityModeVirtualMode
			if kind == "lun" {
				mode = types.VirtualDiskCompatibilityModePhysicalMode
			}
			disk.Backing = &types.VirtualDiskRawDiskMappingVer1BackingInfo{
				VirtualDeviceFileBackingInfo: b.VirtualDeviceFileBackingInfo,
				LunUuid:                      fmt.Sprintf("0200000000600a0b80%014x", hash8(vm.Name)<<8|i),
				DeviceName:                   fmt.Sprintf("/vmfs/devices/disks/naa.600a0b80%012x", hash8(vm.Name)<<8|i),
				CompatibilityMode:            string(mode),
				DiskMode:                     string(types.VirtualDiskModePersistent),
			}
			continue
		case "", "disk":
		default:
			return fmt.Errorf("vm %s: disk %s: kind %q has no vSphere form (disk, rdm, lun)", vm.Name, id, kind)
		}
		b.ThinProvisioned = types.NewBool(d.flag("thin", false)) // vcsim makes every new disk thin
		size := diskSize(disk)
		used := d.size("allocated", size)
		if !d.flag("thin", false) {
			used = size
		}
		if local, _, err := fileOf(vm, b.FileName); err == nil {
			flat := vmdkFiles(local)
			_ = os.Truncate(flat[len(flat)-1], used) // sparse: costs nothing
			if _, err := os.Stat(flat[len(flat)-1]); err != nil {
				if f, err := os.Create(flat[len(flat)-1]); err == nil {
					_ = f.Truncate(used)
					_ = f.Close()
				}
			}
		}
	}

	base, cdroms := 0, 0
	for _, dep := range v.list("depends_on") {
		ds, ok := dss[dep.str("datastore")]
		if !ok {
			return fmt.Errorf("vm %s: depends_on: unknown datastore %q", vm.Name, dep.str("datastore"))
		}
		ref := ds.Self
		switch dep.str("kind") {
		case "base-disk": // a linked clone: the i-th base disk is the parent of the i-th disk
			if base >= len(order) {
				return fmt.Errorf("vm %s: more base disks than disks", vm.Name)
			}
			b, ok := order[base].Backing.(*types.VirtualDiskFlatVer2BackingInfo)
			if !ok {
				return fmt.Errorf("vm %s: disk %d cannot be a linked clone (not a flat disk)", vm.Name, order[base].Key)
			}
			p := dep.str("path")
			if p == "" {
				p = fmt.Sprintf("[%s] %s-base/%s-base.vmdk", ds.Name, vm.Name, vm.Name)
			}
			if local, _, err := fileOf(vm, p); err == nil {
				_ = os.MkdirAll(filepath.Dir(local), 0o700)
				if f, err := os.OpenFile(local, os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
					_ = f.Close()
				}
			}
			b.Parent = &types.VirtualDiskFlatVer2BackingInfo{
				VirtualDeviceFileBackingInfo: types.VirtualDeviceFileBackingInfo{FileName: p, Datastore: &ref},
				DiskMode:                     string(types.VirtualDiskModePersistent), ThinProvisioned: types.NewBool(true)}
			base++
		case "iso":
			p := dep.str("path")
			if p == "" {
				p = fmt.Sprintf("[%s] iso/%s.iso", ds.Name, vm.Name)
			}
			unit := int32(cdroms)
			devices = append(devices, &types.VirtualCdrom{VirtualDevice: types.VirtualDevice{
				Key: int32(3000 + cdroms), ControllerKey: 200, UnitNumber: &unit,
				Backing: &types.VirtualCdromIsoBackingInfo{VirtualDeviceFileBackingInfo: types.VirtualDeviceFileBackingInfo{
					FileName: p, Datastore: &ref}},
				Connectable: &types.VirtualDeviceConnectInfo{StartConnected: true, Connected: true},
			}})
			cdroms++
		default:
			return fmt.Errorf("vm %s: depends_on kind %q has no vSphere form (base-disk, iso)", vm.Name, dep.str("kind"))
		}
	}

	var managed *types.ManagedByInfo
	if m := v.str("managed_by"); m != "" {
		key, typ := m, ""
		if i := strings.Index(m, " ("); i > 0 && strings.HasSuffix(m, ")") {
			key, typ = m[:i], m[i+2:len(m)-1]
		}
		managed = &types.ManagedByInfo{ExtensionKey: key, Type: typ}
	}
	simulator.Map.WithLock(vm, func() {
		vm.Config.Hardware.Device = devices
		vm.Network = networks
		vm.Summary.Config.NumEthernetCards = int32(len(nics))
		if managed != nil {
			vm.Config.ManagedBy = managed
			vm.Summary.Config.ManagedBy = managed
		}
		if u := v.str("uuid"); u != "" {
			vm.Config.Uuid = u
			vm.Summary.Config.Uuid = u
		}
	})
	refreshDatastores(vm)
	return nil
}

// makeInaccessible turns a VM into what vCenter lists when its files cannot be read: no
// configuration, connectionState inaccessible (or orphaned: the host no longer has it).
func makeUnreadable(vm *simulator.VirtualMachine, state types.VirtualMachineConnectionState) {
	simulator.Map.WithLock(vm, func() {
		vm.Runtime.ConnectionState = state
		vm.Summary.Runtime.ConnectionState = state
		if state == types.VirtualMachineConnectionStateInaccessible {
			vm.Config = nil
			vm.Summary.Config.VmPathName = ""
		}
	})
}

func hash8(s string) int {
	h := 0
	for _, c := range s {
		h = (h*31 + int(c)) & 0xff
	}
	return h
}
