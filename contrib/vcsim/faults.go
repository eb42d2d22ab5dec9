package main

// Failure injection by name (hosts and datastores as the estate names them), and the
// Datastore.host fix: vcsim 0.24.2 replaces the Datastore object each time another host
// mounts it, so Datastore.host lists only the last host.

import (
	"fmt"
	"sort"
	"strings"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

type faultState struct {
	hosts      map[string]hostFault
	datastores map[string]bool
}

// hostFault is what the lab made of a host: how vCenter reports it now.
type hostFault struct {
	Connection string `json:"connection"`
	Power      string `json:"power"`
	Das        string `json:"das,omitempty"`
}

func (f *faultState) snapshot() map[string]interface{} {
	hosts := map[string]hostFault{}
	for k, v := range f.hosts {
		hosts[k] = v
	}
	var down []string
	for k := range f.datastores {
		down = append(down, k)
	}
	sort.Strings(down)
	return map[string]interface{}{"hosts": hosts, "datastores_down": down}
}

func hostByName(name string) *simulator.HostSystem {
	for _, e := range simulator.Map.All("HostSystem") {
		if h, ok := e.(*simulator.HostSystem); ok && h.Name == name {
			return h
		}
	}
	return nil
}

// datastoreByName finds a datastore by name for fault injection; a name that several
// datacenters use must be qualified as "datacenter/name".
func datastoreByName(name string) (*simulator.Datastore, error) {
	var dc *simulator.Datacenter
	if i := strings.LastIndex(name, "/"); i > 0 {
		for _, e := range simulator.Map.All("Datacenter") {
			if d, ok := e.(*simulator.Datacenter); ok && d.Name == name[:i] {
				dc = d
			}
		}
		if dc == nil {
			return nil, fmt.Errorf("no datacenter named %q", name[:i])
		}
		name = name[i+1:]
	}
	if ds := datastoreIn(dc, name); ds != nil {
		return ds, nil
	}
	n := 0
	for _, e := range simulator.Map.All("Datastore") {
		if d, ok := e.(*simulator.Datastore); ok && d.Name == name {
			n++
		}
	}
	if n > 1 {
		return nil, fmt.Errorf("datastore name %q is used in %d datacenters: write it as datacenter/%s", name, n, name)
	}
	return nil, fmt.Errorf("no datastore named %q", name)
}

// setHostState is the lab's host failure injection, in vCenter's terms (vSphere API:
// HostSystemConnectionState, HostSystemPowerState, ClusterDasFdmAvailabilityState):
//
//   - "failed": vCenter reports the host down. It does not respond (notResponding), its power
//     state is poweredOff (powered off through vCenter), and in an HA cluster the HA master
//     reports it hostDown. Its VMs are disconnected and no longer run (poweredOff).
//   - "partitioned": the host stops answering management but still runs its VMs. vCenter
//     cannot know its power state (unknown, "if the host is disconnected, or notResponding, we
//     cannot possibly have knowledge of its power state"); HA reports it networkIsolated.
//     Its VMs are disconnected and keep their power state.
//   - "disconnected": a user disconnected it (vCenter expects no heartbeats); VMs as above.
//   - "connected": back to normal (VMs connected again, as they are).
func (x *ext) setHostState(name, state string) error {
	host := hostByName(name)
	if host == nil {
		return fmt.Errorf("no host named %q", name)
	}
	var hf hostFault
	switch state {
	case "failed", "", "notResponding":
		hf = hostFault{string(types.HostSystemConnectionStateNotResponding), string(types.HostSystemPowerStatePoweredOff), ""}
		if haCluster(host) {
			hf.Das = string(types.ClusterDasFdmAvailabilityStateHostDown)
		}
	case "partitioned":
		hf = hostFault{string(types.HostSystemConnectionStateNotResponding), string(types.HostSystemPowerStateUnknown), ""}
		if haCluster(host) {
			hf.Das = string(types.ClusterDasFdmAvailabilityStateNetworkIsolated)
		}
	case "disconnected":
		hf = hostFault{string(types.HostSystemConnectionStateDisconnected), string(types.HostSystemPowerStateUnknown), ""}
	case "connected":
		hf = hostFault{string(types.HostSystemConnectionStateConnected), string(types.HostSystemPowerStatePoweredOn), ""}
	default:
		return fmt.Errorf("state must be failed, partitioned, disconnected or connected (got %q)", state)
	}
	applyHostFault(host, hf)
	if x.faults.hosts == nil {
		x.faults.hosts = map[string]hostFault{}
	}
	if state == "connected" {
		delete(x.faults.hosts, name)
	} else {
		x.faults.hosts[name] = hf
	}
	return nil
}

// haCluster: is the host in a cluster with vSphere HA turned on?
func haCluster(h *simulator.HostSystem) bool {
	if h.Parent == nil {
		return false
	}
	cl, ok := simulator.Map.Get(*h.Parent).(*simulator.ClusterComputeResource)
	if !ok {
		return false
	}
	if cfg, ok := cl.ConfigurationEx.(*types.ClusterConfigInfoEx); ok {
		return cfg.DasConfig.Enabled != nil && *cfg.DasConfig.Enabled
	}
	return false
}

func applyHostState(host *simulator.HostSystem, st types.HostSystemConnectionState) {
	power := types.HostSystemPowerStatePoweredOn
	if st != types.HostSystemConnectionStateConnected {
		power = types.HostSystemPowerStateUnknown
	}
	applyHostFault(host, hostFault{Connection: string(st), Power: string(power)})
}

// applyHostFault sets a host's connection and power state and HA state and, as vCenter does,
// marks its VMs disconnected while the host cannot be reached. A host reported powered off
// runs no VM.
func applyHostFault(host *simulator.HostSystem, hf hostFault) {
	st := types.HostSystemConnectionState(hf.Connection)
	simulator.Map.WithLock(host, func() {
		host.Runtime.ConnectionState = st
		host.Runtime.PowerState = types.HostSystemPowerState(hf.Power)
		if hf.Das != "" {
			host.Runtime.DasHostState = &types.ClusterDasFdmHostState{State: hf.Das}
		} else if haCluster(host) {
			host.Runtime.DasHostState = &types.ClusterDasFdmHostState{
				State: string(types.ClusterDasFdmAvailabilityStateConnectedToMaster)}
		} else {
			host.Runtime.DasHostState = nil
		}
		if host.Summary.Runtime != nil && host.Summary.Runtime != &host.Runtime {
			host.Summary.Runtime.ConnectionState = st
			host.Summary.Runtime.PowerState = host.Runtime.PowerState
		}
	})
	refreshReach(host)
	vmState := types.VirtualMachineConnectionStateConnected
	if st != types.HostSystemConnectionStateConnected {
		vmState = types.VirtualMachineConnectionStateDisconnected
	}
	off := hf.Power == string(types.HostSystemPowerStatePoweredOff) || hf.Power == string(types.HostSystemPowerStateStandBy)
	for _, ref := range host.Vm {
		if vm, ok := simulator.Map.Get(ref).(*simulator.VirtualMachine); ok {
			if vm.Runtime.ConnectionState != types.VirtualMachineConnectionStateConnected &&
				vm.Runtime.ConnectionState != types.VirtualMachineConnectionStateDisconnected {
				continue // orphaned or inaccessible: not the host's doing
			}
			simulator.Map.WithLock(vm, func() {
				vm.Runtime.ConnectionState = vmState
				vm.Summary.Runtime.ConnectionState = vmState
			})
			if off {
				setPower(vm, types.VirtualMachinePowerStatePoweredOff)
			}
		}
	}
}

// refreshReach: vCenter reaches a datastore through its hosts, so one whose every mounting host
// it cannot reach (a failed host's local disk) is not accessible until a host comes back
// (vSphere API: DatastoreSummary.accessible, "the connectivity status of this datastore";
// HostMountInfo.accessible per host). A datastore failed on purpose stays failed.
func refreshReach(host *simulator.HostSystem) {
	for _, ref := range host.Datastore {
		ds, ok := simulator.Map.Get(ref).(*simulator.Datastore)
		if !ok || ds.OverallStatus == types.ManagedEntityStatusRed {
			continue
		}
		reached := false
		for _, m := range ds.Host {
			if h, ok := simulator.Map.Get(m.Key).(*simulator.HostSystem); ok &&
				h.Runtime.ConnectionState == types.HostSystemConnectionStateConnected {
				reached = true
			}
		}
		simulator.Map.WithLock(ds, func() { ds.Summary.Accessible = reached })
	}
}

func (x *ext) setDatastoreAccessible(name string, accessible bool) error {
	ds, err := datastoreByName(name)
	if err != nil {
		return err
	}
	applyDatastoreAccessible(ds, accessible)
	if x.faults.datastores == nil {
		x.faults.datastores = map[string]bool{}
	}
	if accessible {
		delete(x.faults.datastores, name)
	} else {
		x.faults.datastores[name] = true
	}
	return nil
}

func applyDatastoreAccessible(ds *simulator.Datastore, accessible bool) {
	simulator.Map.WithLock(ds, func() {
		ds.Summary.Accessible = accessible
		for i := range ds.Host {
			ds.Host[i].MountInfo.Accessible = types.NewBool(accessible)
		}
		if accessible {
			ds.OverallStatus = types.ManagedEntityStatusGreen
		} else {
			ds.OverallStatus = types.ManagedEntityStatusRed
		}
	})
}

func (x *ext) restore() error {
	for name := range x.faults.hosts {
		if h := hostByName(name); h != nil {
			applyHostFault(h, hostFault{Connection: string(types.HostSystemConnectionStateConnected),
				Power: string(types.HostSystemPowerStatePoweredOn)})
		}
	}
	for name := range x.faults.datastores {
		if d, err := datastoreByName(name); err == nil {
			applyDatastoreAccessible(d, true)
		}
	}
	x.faults = faultState{}
	return nil
}

// fixDatastoreHosts lists every host that mounts a datastore in Datastore.host.
func fixDatastoreHosts() {
	for _, e := range simulator.Map.All("HostSystem") {
		host, ok := e.(*simulator.HostSystem)
		if !ok {
			continue
		}
		for _, ref := range host.Datastore {
			ds, ok := simulator.Map.Get(ref).(*simulator.Datastore)
			if !ok {
				continue
			}
			addMount(ds, host.Self)
		}
	}
}

func addMount(ds *simulator.Datastore, host types.ManagedObjectReference) {
	simulator.Map.WithLock(ds, func() {
		for _, m := range ds.Host {
			if m.Key == host {
				return
			}
		}
		ds.Host = append(ds.Host, types.DatastoreHostMount{
			Key: host,
			MountInfo: types.HostMountInfo{
				Path:       ds.Info.GetDatastoreInfo().Url,
				AccessMode: string(types.HostMountModeReadWrite),
				Mounted:    types.NewBool(true),
				Accessible: types.NewBool(ds.Summary.Accessible),
			},
		})
	})
}
