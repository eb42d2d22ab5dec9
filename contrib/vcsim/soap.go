package main

// The HTTP front of the lab: SOAP calls for the methods this program adds are answered here;
// everything else goes to vcsim's own handler unchanged. Requests are decoded with vcsim's
// exported UnmarshalBody and answered in the same envelope shape vcsim uses, so pyVmomi
// cannot tell the two apart.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/ioutil"
	"net/http"
	"os"
	"reflect"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
	"github.com/vmware/govmomi/vim25/xml"
)

// failure is a method fault plus the message a user should read.
type failure struct {
	fault types.BaseMethodFault
	msg   string
}

func fail(f types.BaseMethodFault, format string, args ...interface{}) *failure {
	msg := fmt.Sprintf(format, args...)
	mf := f.GetMethodFault()
	mf.FaultMessage = append(mf.FaultMessage, types.LocalizableMessage{Key: "ftbridge.vcsim", Message: msg})
	return &failure{fault: f, msg: msg}
}

func (f *failure) Error() string { return f.msg }

type handler func(x *ext, m *simulator.Method) (interface{}, *failure)

// handlers maps SOAP method names on a VirtualMachine to what this program does instead of
// vcsim. A handler that returns neither a result nor a failure passes the call on to vcsim.
var handlers = map[string]handler{
	"CreateSecondaryVMEx_Task":        (*ext).soapCreateSecondary,
	"TurnOffFaultToleranceForVM_Task": (*ext).soapTurnOffFT,
	"TerminateFaultTolerantVM_Task":   (*ext).soapTerminateFT,
	"MakePrimaryVM_Task":              (*ext).soapMakePrimary,
	"RelocateVM_Task":                 (*ext).soapRelocate,
	"CloneVM_Task":                    (*ext).soapClone,
	"Destroy_Task":                    (*ext).soapDestroy,
	"PowerOnVM_Task":                  (*ext).soapPower,
	"PowerOffVM_Task":                 (*ext).soapPower,
	"ResetVM_Task":                    (*ext).soapPower,
	"SuspendVM_Task":                  (*ext).soapPower,
	"UnregisterVM":                    (*ext).soapUnregister,
}

// folderHandlers: the same for methods on a Folder.
var folderHandlers = map[string]handler{
	"RegisterVM_Task": (*ext).soapRegister,
}

type ext struct {
	inner http.Handler
	c     *vim25.Client // in-process client: vcsim's own methods, called without HTTP
	ctx   context.Context
	user  string
	plain bool
	token string

	mu     sync.Mutex // one extension operation at a time: limits are checked and applied atomically
	faults faultState

	pageSize     int             // PropertyCollector policy: at most this many objects per reply (0: none)
	refused      map[string]bool // VM names whose properties the session may not read
	pages        pcPages
	unregistered map[string]savedVM // by .vmx path: what RegisterVM_Task reads back (the .vmx's content)
}

func newExt(c *vim25.Client, user string, plain bool) *ext {
	return &ext{c: c, ctx: context.Background(), user: user, plain: plain}
}

func (x *ext) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() { // a bug here answers as a fault (and says where), not with a dropped connection
		if p := recover(); p != nil {
			fmt.Fprintf(os.Stderr, "ftbridge-vcsim: panic serving %s: %v\n%s\n", r.URL.Path, p, debug.Stack())
			writeFault(w, fail(&types.SystemError{Reason: fmt.Sprint(p)}, "lab error: %v", p))
		}
	}()
	if strings.HasPrefix(r.URL.Path, "/ftbridge/") {
		x.control(w, r)
		return
	}
	if x.plain || r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, "/sdk") {
		x.inner.ServeHTTP(w, r)
		return
	}
	body, err := ioutil.ReadAll(r.Body)
	_ = r.Body.Close()
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	name := methodName(body)
	if rh, ok := rawHandlers[name]; ok && rh(x, w, r, body) {
		return
	}
	h, ok := handlers[name]
	fh, fok := folderHandlers[name]
	if !ok && !fok {
		x.pass(w, r, body)
		return
	}
	method, err := simulator.UnmarshalBody(types.TypeFunc(), body)
	if err != nil {
		writeFault(w, fail(&types.InvalidRequest{}, "%s", err))
		return
	}
	switch {
	case ok && method.This.Type == "VirtualMachine":
	case fok && method.This.Type == "Folder":
		h = fh
	default: // Destroy_Task of a folder, say: vcsim's own
		x.pass(w, r, body)
		return
	}
	if !x.authenticated(r) {
		writeFault(w, fail(&types.NotAuthenticated{NoPermission: types.NoPermission{Object: method.This, PrivilegeId: "System.View"}}, "not authenticated"))
		return
	}
	x.mu.Lock()
	res, f := h(x, method)
	x.mu.Unlock()
	if f != nil {
		writeFault(w, f)
		return
	}
	if res == nil {
		x.pass(w, r, body)
		return
	}
	writeResult(w, res)
}

// pass hands a request to vcsim's own handler.
func (x *ext) pass(w http.ResponseWriter, r *http.Request, body []byte) {
	r.Body = ioutil.NopCloser(bytes.NewReader(body))
	x.inner.ServeHTTP(w, r)
}

// methodName is the local name of the first element inside the SOAP Body, found without
// decoding the envelope, so calls this program does not handle cost almost nothing.
func methodName(body []byte) string {
	i := bytes.Index(body, []byte("Body"))
	for i >= 0 {
		rest := body[i+4:]
		if len(rest) > 0 && (rest[0] == '>' || rest[0] == ' ') {
			j := bytes.IndexByte(rest, '>')
			if j < 0 {
				return ""
			}
			rest = bytes.TrimLeft(rest[j+1:], " \t\r\n")
			if len(rest) == 0 || rest[0] != '<' {
				return ""
			}
			end := bytes.IndexAny(rest, " />\t\r\n")
			if end < 0 {
				return ""
			}
			name := string(rest[1:end])
			if k := strings.IndexByte(name, ':'); k >= 0 {
				name = name[k+1:]
			}
			return name
		}
		next := bytes.Index(rest, []byte("Body"))
		if next < 0 {
			return ""
		}
		i += 4 + next
	}
	return ""
}

// authenticated asks vcsim's SessionManager whether the request's session cookie is live.
func (x *ext) authenticated(r *http.Request) bool {
	cookie, err := r.Cookie(soap.SessionCookieName)
	if err != nil {
		return false
	}
	sm := simulator.Map.SessionManager()
	res := sm.SessionIsActive(&simulator.Context{Map: simulator.Map, Context: x.ctx},
		&types.SessionIsActive{This: sm.Self, SessionID: cookie.Value, UserName: x.user})
	body, ok := res.(*methods.SessionIsActiveBody)
	return ok && body.Res != nil && body.Res.Returnval
}

const envelopeStart = `<soapenv:Envelope xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/" ` +
	`xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" ` +
	`xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>`
const envelopeEnd = `</soapenv:Body></soapenv:Envelope>`

func writeResult(w http.ResponseWriter, res interface{}) {
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	buf.WriteString(envelopeStart)
	enc := xml.NewEncoder(&buf)
	name := reflect.TypeOf(res).Elem().Name()
	if err := enc.EncodeElement(res, xml.StartElement{Name: xml.Name{Space: "urn:" + vim25.Namespace, Local: name}}); err != nil {
		writeFault(w, fail(&types.SystemError{Reason: err.Error()}, "encoding %s: %s", name, err))
		return
	}
	_ = enc.Flush()
	buf.WriteString(envelopeEnd)
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}

func writeFault(w http.ResponseWriter, f *failure) {
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	buf.WriteString(envelopeStart)
	buf.WriteString(`<soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>`)
	_ = xml.EscapeText(&buf, []byte(f.msg))
	buf.WriteString(`</faultstring><detail>`)
	kind := reflect.TypeOf(f.fault).Elem().Name()
	enc := xml.NewEncoder(&buf)
	_ = enc.EncodeElement(f.fault, xml.StartElement{
		Name: xml.Name{Space: "urn:" + vim25.Namespace, Local: kind + "Fault"},
		Attr: []xml.Attr{{Name: xml.Name{Local: "xsi:type"}, Value: kind}},
	})
	_ = enc.Flush()
	buf.WriteString(`</detail></soapenv:Fault>`)
	buf.WriteString(envelopeEnd)
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = w.Write(buf.Bytes())
}

// runTask records an operation as a vcsim Task on obj, runs it, and gives the failure a
// readable message (vcsim would write the Go type name there).
func runTask(obj types.ManagedObjectReference, name string, fn func() (types.AnyType, *failure)) types.ManagedObjectReference {
	var failed *failure
	task := simulator.CreateTask(obj, name, func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
		res, f := fn()
		if f != nil {
			failed = f
			return nil, f.fault
		}
		return res, nil
	})
	ref := task.Run()
	if failed != nil {
		simulator.Map.Update(task, []types.PropertyChange{{
			Name: "info.error",
			Val:  types.LocalizedMethodFault{Fault: failed.fault, LocalizedMessage: failed.msg},
		}})
	}
	return ref
}

// control serves the lab's fault injection: POST /ftbridge/{host,datastore,restore}?token=...
func (x *ext) control(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Ftbridge-Token") != x.token || x.token == "" {
		http.Error(w, "bad or missing X-Ftbridge-Token", http.StatusForbidden)
		return
	}
	var req struct {
		Name       string `json:"name"`
		State      string `json:"state"`
		Accessible *bool  `json:"accessible"`
	}
	if r.Method == http.MethodPost {
		data, _ := ioutil.ReadAll(io.LimitReader(r.Body, 1<<16))
		if len(data) > 0 {
			if err := json.Unmarshal(data, &req); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		}
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	var err error
	switch r.URL.Path {
	case "/ftbridge/host":
		err = x.setHostState(req.Name, req.State)
	case "/ftbridge/datastore":
		ok := true
		if req.Accessible != nil {
			ok = *req.Accessible
		}
		err = x.setDatastoreAccessible(req.Name, ok)
	case "/ftbridge/restore":
		err = x.restore()
	case "/ftbridge/state":
	default:
		http.NotFound(w, r)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(x.faults.snapshot())
}
