// Command ftbridge-vcsim serves the govmomi simulator (vcsim, from Debian's
// golang-github-vmware-govmomi-dev 0.24.2) as ftbridge's vSphere lab.
//
// vcsim 0.24.2 lacks what ftbridge's vSphere driver relies on, so this program adds it
// (see README.md): the Fault Tolerance methods and state, a RelocateVM_Task that moves
// files, CloneVM_Task/Destroy_Task that leave the source and free space intact, host and
// datastore failure injection, Datastore.host listing every mounting host, and seeding
// from an ftbridge estate. With -plain it serves an unextended vcsim instead.
//
// On start it prints one JSON line on stdout (url, cert, token, counts) and then serves
// until SIGINT/SIGTERM, or until stdin closes when -stdin-eof is given.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/ioutil"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
)

type options struct {
	listen     string
	plain      bool
	estateFile string
	estateName string
	hosts      int
	standalone int
	datastores int
	vms        int
	dcs        int
	pageSize   int
	user       string
	certFile   string
	dir        string
	stdinEOF   bool
	quiet      bool
}

func main() {
	var o options
	flag.StringVar(&o.listen, "listen", "127.0.0.1:0", "address to serve HTTPS on (port 0: a free port)")
	flag.BoolVar(&o.plain, "plain", false, "serve an unextended vcsim (no FT, no file relocation, no fixes)")
	flag.StringVar(&o.estateFile, "estate", "", "ftbridge estate file (JSON) to seed the inventory from")
	flag.StringVar(&o.estateName, "name", "", "estate to use from -estate (default: the only one)")
	flag.IntVar(&o.hosts, "hosts", 3, "hosts in the cluster (without -estate)")
	flag.IntVar(&o.standalone, "standalone", 0, "standalone hosts (without -estate)")
	flag.IntVar(&o.datastores, "datastores", 1, "datastores mounted by every host (without -estate)")
	flag.IntVar(&o.vms, "vms", 2, "VMs per resource pool: the cluster's and each standalone host's (without -estate)")
	flag.IntVar(&o.dcs, "datacenters", 1, "datacenters, each with the hosts, datastores and VMs above (without -estate)")
	flag.IntVar(&o.pageSize, "page-size", 0, "PropertyCollector policy: at most this many objects per RetrievePropertiesEx reply (0: no limit)")
	flag.StringVar(&o.user, "username", "user", "user name the server accepts (password: $FTBRIDGE_VCSIM_PASSWORD, default 'pass')")
	flag.StringVar(&o.certFile, "cert", "", "where to write the server certificate (PEM); default: in the data directory")
	flag.StringVar(&o.dir, "dir", "", "data directory for estate datastores and the certificate (default: new dir in $TMPDIR)")
	flag.BoolVar(&o.stdinEOF, "stdin-eof", false, "exit when stdin closes (so the lab dies with its parent)")
	flag.BoolVar(&o.quiet, "quiet", false, "discard vcsim's own log lines")
	flag.Parse()

	if o.quiet {
		log.SetOutput(ioutil.Discard)
	}
	if err := run(o); err != nil {
		fmt.Fprintf(os.Stderr, "ftbridge-vcsim: %s\n", err)
		os.Exit(1)
	}
}

func run(o options) error {
	password := os.Getenv("FTBRIDGE_VCSIM_PASSWORD")
	if password == "" {
		password = "pass"
	}

	ownDir := false
	if o.dir == "" {
		d, err := ioutil.TempDir("", "ftbridge-vcsim-")
		if err != nil {
			return err
		}
		o.dir, ownDir = d, true
	}
	if err := os.MkdirAll(o.dir, 0o700); err != nil {
		return err
	}

	model := simulator.VPX()
	model.Portgroup = 0
	if o.estateFile != "" {
		// Only the datacenter comes from the model; the estate brings the rest.
		model.Host, model.Cluster, model.ClusterHost, model.Datastore, model.Machine = 0, 0, 0, 0, 0
	} else {
		model.Host, model.ClusterHost, model.Datastore, model.Machine = o.standalone, o.hosts, o.datastores, o.vms
		if o.dcs > 1 {
			model.Datacenter = o.dcs
		}
		if o.hosts <= 0 {
			model.Cluster = 0
		}
	}

	started := time.Now()
	if err := model.Create(); err != nil {
		return fmt.Errorf("creating the inventory: %w", err)
	}
	defer model.Remove()

	ctx := context.Background()
	inproc, err := vim25.NewClient(ctx, model.Service)
	if err != nil {
		return fmt.Errorf("in-process client: %w", err)
	}

	x := newExt(inproc, o.user, o.plain)
	x.pageSize = o.pageSize
	if o.estateFile != "" {
		if err := seedEstate(ctx, x, o.estateFile, o.estateName, filepath.Join(o.dir, "datastores")); err != nil {
			return err
		}
	}
	if !o.plain {
		fixDatastoreHosts()
	}

	svc := model.Service
	svc.Listen = &url.URL{User: url.UserPassword(o.user, password)}
	svc.RegisterSDK(simulator.Map)
	svc.ServeMux.HandleFunc(simulator.Map.Path+"/vimServiceVersions.xml", svc.ServiceVersions)
	x.inner = svc.ServeMux

	certFile := o.certFile
	if certFile == "" {
		certFile = filepath.Join(o.dir, "cert.pem")
	}
	tlsConfig, err := selfSignedTLS(certFile)
	if err != nil {
		return fmt.Errorf("certificate: %w", err)
	}

	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return err
	}
	server := &http.Server{Handler: x, TLSConfig: tlsConfig, ErrorLog: log.New(ioutil.Discard, "", 0)}
	go func() { _ = server.ServeTLS(ln, "", "") }()

	token := make([]byte, 16)
	_, _ = rand.Read(token)
	x.token = hex.EncodeToString(token)

	addr := ln.Addr().(*net.TCPAddr)
	ready := map[string]interface{}{
		"url":         fmt.Sprintf("https://%s/sdk", addr.String()),
		"host":        addr.IP.String(),
		"port":        addr.Port,
		"cert":        certFile,
		"token":       x.token,
		"plain":       o.plain,
		"hosts":       len(simulator.Map.All("HostSystem")),
		"datastores":  len(simulator.Map.All("Datastore")),
		"vms":         len(simulator.Map.All("VirtualMachine")),
		"datacenters": len(simulator.Map.All("Datacenter")),
		"seconds":     time.Since(started).Seconds(),
	}
	line, _ := json.Marshal(ready)
	fmt.Println(string(line))

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	if o.stdinEOF {
		go func() {
			_, _ = io.Copy(ioutil.Discard, bufio.NewReader(os.Stdin))
			stop <- syscall.SIGTERM
		}()
	}
	<-stop

	shutdown, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_ = server.Shutdown(shutdown)
	if ownDir {
		_ = os.RemoveAll(o.dir)
	}
	return nil
}
