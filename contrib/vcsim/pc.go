package main

// The PropertyCollector as vCenter serves it and vcsim 0.24.2 does not:
//
//   - Paging. RetrievePropertiesEx returns at most RetrieveOptions.maxObjects objects and a
//     token for the rest, read with ContinueRetrievePropertiesEx (or dropped with
//     CancelRetrievePropertiesEx); "an unset value indicates that there is no maximum. In this
//     case PropertyCollector policy may still limit the number of objects" (vSphere API,
//     RetrieveOptions), which -page-size imitates. An unknown token is an InvalidProperty
//     fault on "token", as govmomi's later simulator answers (simulator/property_collector.go).
//     vcsim 0.24.2 ignores maxObjects and has no ContinueRetrievePropertiesEx.
//   - Refused properties. A VM the session may see but not read (System.View without
//     System.Read) comes back with its name and every other requested path in missingSet,
//     each with a NoPermission fault naming the object and the privilege (vSphere API,
//     ObjectContent.missingSet, MissingProperty; vcsim itself answers a session-less read
//     the same way with NotAuthenticated).
//
// The reply of vcsim's own RetrievePropertiesEx is decoded, reshaped and re-encoded only when
// one of these applies; otherwise vcsim answers unchanged.

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	stdxml "encoding/xml"
	"io/ioutil"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
	"github.com/vmware/govmomi/vim25/xml"
)

type pcPages struct {
	mu      sync.Mutex
	pending map[string]pcPending
}

type pcPending struct {
	max     int
	objects []types.ObjectContent
}

// rawHandler answers a SOAP call from its raw request; false passes it on to vcsim.
type rawHandler func(x *ext, w http.ResponseWriter, r *http.Request, body []byte) bool

var rawHandlers = map[string]rawHandler{
	"RetrievePropertiesEx":         (*ext).rawRetrieve,
	"ContinueRetrievePropertiesEx": (*ext).rawContinue,
	"CancelRetrievePropertiesEx":   (*ext).rawCancel,
	"Fetch":                        (*ext).rawFetch,
}

func (x *ext) rawRetrieve(w http.ResponseWriter, r *http.Request, body []byte) bool {
	method, err := simulator.UnmarshalBody(types.TypeFunc(), body)
	if err != nil {
		return false
	}
	req, ok := method.Body.(*types.RetrievePropertiesEx)
	if !ok {
		return false
	}
	max := int(req.Options.MaxObjects)
	if x.pageSize > 0 && (max <= 0 || max > x.pageSize) {
		max = x.pageSize
	}
	if max <= 0 && len(x.refused) == 0 {
		return false
	}
	rec := httptest.NewRecorder()
	r.Body = ioutil.NopCloser(bytes.NewReader(body))
	x.inner.ServeHTTP(rec, r)
	res, ok := decodeRetrieve(rec)
	if !ok { // a fault, or nothing we can read: as vcsim answered
		copyRecorded(w, rec)
		return true
	}
	x.refuse(res)
	x.page(res, max)
	writeResult(w, &types.RetrievePropertiesExResponse{Returnval: res})
	return true
}

func (x *ext) rawContinue(w http.ResponseWriter, r *http.Request, body []byte) bool {
	method, err := simulator.UnmarshalBody(types.TypeFunc(), body)
	if err != nil {
		return false
	}
	req, ok := method.Body.(*types.ContinueRetrievePropertiesEx)
	if !ok {
		return false
	}
	if !x.authenticated(r) {
		writeFault(w, fail(&types.NotAuthenticated{NoPermission: types.NoPermission{Object: req.This,
			PrivilegeId: "System.View"}}, "not authenticated"))
		return true
	}
	x.pages.mu.Lock()
	p, found := x.pages.pending[req.Token]
	delete(x.pages.pending, req.Token)
	x.pages.mu.Unlock()
	if req.Token == "" || !found {
		writeFault(w, fail(&types.InvalidProperty{Name: "token"}, "unknown or used token %q", req.Token))
		return true
	}
	res := &types.RetrieveResult{Objects: p.objects}
	x.page(res, p.max)
	writeResult(w, &types.ContinueRetrievePropertiesExResponse{Returnval: *res})
	return true
}

func (x *ext) rawCancel(w http.ResponseWriter, r *http.Request, body []byte) bool {
	method, err := simulator.UnmarshalBody(types.TypeFunc(), body)
	if err != nil {
		return false
	}
	req, ok := method.Body.(*types.CancelRetrievePropertiesEx)
	if !ok {
		return false
	}
	if !x.authenticated(r) {
		writeFault(w, fail(&types.NotAuthenticated{NoPermission: types.NoPermission{Object: req.This,
			PrivilegeId: "System.View"}}, "not authenticated"))
		return true
	}
	x.pages.mu.Lock()
	_, found := x.pages.pending[req.Token]
	delete(x.pages.pending, req.Token)
	x.pages.mu.Unlock()
	if !found {
		writeFault(w, fail(&types.InvalidProperty{Name: "token"}, "unknown or used token %q", req.Token))
		return true
	}
	writeResult(w, &types.CancelRetrievePropertiesExResponse{})
	return true
}

// page keeps the first max objects and files the rest under a new token.
func (x *ext) page(res *types.RetrieveResult, max int) {
	res.Token = ""
	if max <= 0 || len(res.Objects) <= max {
		return
	}
	token := make([]byte, 12)
	_, _ = rand.Read(token)
	res.Token = hex.EncodeToString(token)
	rest := append([]types.ObjectContent(nil), res.Objects[max:]...)
	res.Objects = res.Objects[:max]
	x.pages.mu.Lock()
	if x.pages.pending == nil {
		x.pages.pending = map[string]pcPending{}
	}
	x.pages.pending[res.Token] = pcPending{max: max, objects: rest}
	x.pages.mu.Unlock()
}

// refuse moves every property but the name of a refused VM into missingSet (NoPermission).
func (x *ext) refuse(res *types.RetrieveResult) {
	for i := range res.Objects {
		o := &res.Objects[i]
		if o.Obj.Type != "VirtualMachine" {
			continue
		}
		vm, ok := simulator.Map.Get(o.Obj).(*simulator.VirtualMachine)
		if !ok || !x.refused[vm.Name] {
			continue
		}
		var kept []types.DynamicProperty
		for _, p := range o.PropSet {
			if p.Name == "name" {
				kept = append(kept, p)
				continue
			}
			o.MissingSet = append(o.MissingSet, types.MissingProperty{Path: p.Name, Fault: types.LocalizedMethodFault{
				Fault: &types.NoPermission{Object: o.Obj, PrivilegeId: "System.Read"},
			}})
		}
		o.PropSet = kept
	}
}

func decodeRetrieve(rec *httptest.ResponseRecorder) (*types.RetrieveResult, bool) {
	if rec.Code != http.StatusOK {
		return nil, false
	}
	var body methods.RetrievePropertiesExBody
	env := soap.Envelope{Body: &body}
	dec := xml.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.TypeFunc = types.TypeFunc()
	if err := dec.Decode(&env); err != nil || body.Fault_ != nil || body.Res == nil {
		return nil, false
	}
	if body.Res.Returnval == nil {
		return &types.RetrieveResult{}, true
	}
	return body.Res.Returnval, true
}

func copyRecorded(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// rawFetch is pyVmomi's property accessor (PropertyCollector.Fetch, one property of one
// object). A refused VM's property is a NoPermission fault, as RetrievePropertiesEx refuses
// it; an unset property (an inaccessible VM's config) is an empty reply, where vcsim 0.24.2
// indexes an empty result and panics.
func (x *ext) rawFetch(w http.ResponseWriter, r *http.Request, body []byte) bool {
	var req struct {
		This struct {
			Type  string `xml:"type,attr"`
			Value string `xml:",chardata"`
		} `xml:"_this"`
		Prop string `xml:"prop"`
	}
	dec := stdxml.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		if se, ok := tok.(stdxml.StartElement); ok && se.Name.Local == "Fetch" {
			if dec.DecodeElement(&req, &se) != nil {
				return false
			}
			break
		}
	}
	if req.This.Type != "VirtualMachine" {
		return false
	}
	ref := types.ManagedObjectReference{Type: req.This.Type, Value: strings.TrimSpace(req.This.Value)}
	vm, ok := simulator.Map.Get(ref).(*simulator.VirtualMachine)
	if !ok {
		return false
	}
	if !x.authenticated(r) {
		writeFault(w, fail(&types.NotAuthenticated{NoPermission: types.NoPermission{Object: ref,
			PrivilegeId: "System.View"}}, "not authenticated"))
		return true
	}
	if x.refused[vm.Name] && req.Prop != "name" {
		writeFault(w, fail(&types.NoPermission{Object: ref, PrivilegeId: "System.Read"},
			"Permission to perform this operation was denied."))
		return true
	}
	if vm.Config == nil && (req.Prop == "config" || strings.HasPrefix(req.Prop, "config.")) {
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(xml.Header + envelopeStart + `<FetchResponse xmlns="urn:vim25"></FetchResponse>` + envelopeEnd))
		return true
	}
	return false
}
