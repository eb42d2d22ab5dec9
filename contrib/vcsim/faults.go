package main

// Failure injection by name (hosts and datastores as the estate names them), and the
// Datastore.host fix: vcsim 0.24.2 replaces the Datastore object each time another host
// mounts it, so Datastore.host lists only the last host.

import (
	"fmt"
	"sort"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

type faultState struct {
	hosts      map[string]types.HostSystemConnectionState
	datastores map[string]bool
}

func (f *faultState) snapshot() map[string]interface{} {
	hosts := map[string]string{}
	for k, v := range f.hosts {
		hosts[k] = string(v)
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

func datastoreByName(name string) *simulator.Datastore {
	for _, e := range simulator.Map.All("Datastore") {
		if d, ok := e.(*simulator.Datastore); ok && d.Name == name {
			return d
		}
	}
	return nil
}

func (x *ext) setHostState(name, state string) error {
	host := hostByName(name)
	if host == nil {
		return fmt.Errorf("no host named %q", name)
	}
	if state == "" {
		state = string(types.HostSystemConnectionStateNotResponding)
	}
	st := types.HostSystemConnectionState(state)
	switch st {
	case types.HostSystemConnectionStateConnected, types.HostSystemConnectionStateNotResponding,
		types.HostSystemConnectionStateDisconnected:
	default:
		return fmt.Errorf("state must be connected, notResponding or disconnected (got %q)", state)
	}
	applyHostState(host, st)
	if x.faults.hosts == nil {
		x.faults.hosts = map[string]types.HostSystemConnectionState{}
	}
	if st == types.HostSystemConnectionStateConnected {
		delete(x.faults.hosts, name)
	} else {
		x.faults.hosts[name] = st
	}
	return nil
}

// applyHostState sets a host's connection state and, as vCenter does, marks its VMs
// disconnected while the host cannot be reached.
func applyHostState(host *simulator.HostSystem, st types.HostSystemConnectionState) {
	simulator.Map.WithLock(host, func() {
		host.Runtime.ConnectionState = st
		if host.Summary.Runtime != nil {
			host.Summary.Runtime.ConnectionState = st
		}
	})
	vmState := types.VirtualMachineConnectionStateConnected
	if st != types.HostSystemConnectionStateConnected {
		vmState = types.VirtualMachineConnectionStateDisconnected
	}
	for _, ref := range host.Vm {
		if vm, ok := simulator.Map.Get(ref).(*simulator.VirtualMachine); ok {
			simulator.Map.WithLock(vm, func() {
				vm.Runtime.ConnectionState = vmState
				vm.Summary.Runtime.ConnectionState = vmState
			})
		}
	}
}

func (x *ext) setDatastoreAccessible(name string, accessible bool) error {
	ds := datastoreByName(name)
	if ds == nil {
		return fmt.Errorf("no datastore named %q", name)
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
			applyHostState(h, types.HostSystemConnectionStateConnected)
		}
	}
	for name := range x.faults.datastores {
		if d := datastoreByName(name); d != nil {
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
