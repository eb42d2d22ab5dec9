package main

// Datacenters. A datastore's name is unique only within its datacenter (vSphere API:
// Datacenter.datastore; every ESXi host's local datastore starts as "datastore1", and vcsim's
// own model gives each datacenter a "LocalDS_0"), so the lab resolves the "[name]" of a file
// path within the datacenter of the VM the path belongs to, as vcsim itself does among the
// VM host's datastores (simulator/virtual_machine.go, findDatastore).

import (
	"context"
	"fmt"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// dcOf is the datacenter an inventory object sits in (nil when it is in none).
func dcOf(ref types.ManagedObjectReference) *simulator.Datacenter {
	for i := 0; i < 64; i++ {
		obj := simulator.Map.Get(ref)
		if obj == nil {
			return nil
		}
		if dc, ok := obj.(*simulator.Datacenter); ok {
			return dc
		}
		e, ok := obj.(mo.Entity)
		if !ok || e.Entity().Parent == nil {
			return nil
		}
		ref = *e.Entity().Parent
	}
	return nil
}

// datastoreIn is the datastore of that name in a datacenter (any datacenter when dc is nil
// and the name is unique across them).
func datastoreIn(dc *simulator.Datacenter, name string) *simulator.Datastore {
	var found []*simulator.Datastore
	for _, e := range simulator.Map.All("Datastore") {
		d, ok := e.(*simulator.Datastore)
		if !ok || d.Name != name {
			continue
		}
		if dc == nil || sameDC(dcOf(d.Self), dc) {
			found = append(found, d)
		}
	}
	if len(found) != 1 {
		return nil
	}
	return found[0]
}

func sameDC(a, b *simulator.Datacenter) bool {
	return a != nil && b != nil && a.Self == b.Self
}

// datacenterNamed finds or creates a datacenter under the root folder.
func (x *ext) datacenterNamed(ctx context.Context, name string) (*simulator.Datacenter, error) {
	for _, e := range simulator.Map.All("Datacenter") {
		if dc, ok := e.(*simulator.Datacenter); ok && dc.Name == name {
			return dc, nil
		}
	}
	root := object.NewRootFolder(x.c)
	made, err := root.CreateDatacenter(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("datacenter %s: %w", name, err)
	}
	dc, ok := simulator.Map.Get(made.Reference()).(*simulator.Datacenter)
	if !ok {
		return nil, fmt.Errorf("datacenter %s: not created", name)
	}
	return dc, nil
}
