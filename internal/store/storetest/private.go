package storetest

import (
	"cmp"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// PrivatePostgres is a throw-away PostgreSQL cluster owned by one test, for
// fault tests that stop and restart the server: the shared server named by
// TEST_DATABASE_URL is never touched.
type PrivatePostgres struct {
	// URL reaches the cluster's postgres database as the postgres superuser.
	URL string

	t    testing.TB
	bin  string
	data string
	opts string
	log  string
}

// StartPrivatePostgres creates a cluster in a temporary directory, starts it
// on a free loopback port, and removes it when t ends. It skips t when the
// PostgreSQL server binaries are not installed. PostgreSQL refuses to run as
// root, so under root the cluster belongs to the postgres user.
func StartPrivatePostgres(t testing.TB) *PrivatePostgres {
	t.Helper()
	bin := serverBinaries()
	if bin == "" {
		t.Skip("PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin; apt-get install -y postgresql to run this fault test")
	}
	dir, err := os.MkdirTemp("", "sco-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if os.Geteuid() == 0 {
		if out, err := exec.Command("chown", "postgres:postgres", dir).CombinedOutput(); err != nil {
			t.Fatalf("chown %s to postgres: %v\n%s", dir, err, out)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	p := &PrivatePostgres{
		URL:  fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=2", port),
		t:    t,
		bin:  bin,
		data: filepath.Join(dir, "data"),
		opts: fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off", port, dir),
		log:  filepath.Join(dir, "log"),
	}
	p.run("initdb", "-D", p.data, "-A", "trust", "-U", "postgres", "--no-sync")
	p.Start()
	t.Cleanup(func() { _ = p.command("pg_ctl", "-D", p.data, "-m", "immediate", "-w", "stop").Run() })
	return p
}

// Start starts the cluster and waits until it accepts connections.
func (p *PrivatePostgres) Start() {
	p.t.Helper()
	p.run("pg_ctl", "-D", p.data, "-o", p.opts, "-l", p.log, "-w", "start")
}

// Stop shuts the cluster down the way an operator's restart does: sessions
// are ended with admin shutdown (57P01), then the port closes.
func (p *PrivatePostgres) Stop() {
	p.t.Helper()
	p.run("pg_ctl", "-D", p.data, "-m", "fast", "-w", "stop")
}

func (p *PrivatePostgres) command(name string, args ...string) *exec.Cmd {
	path := filepath.Join(p.bin, name)
	if os.Geteuid() == 0 {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	}
	return exec.Command(path, args...)
}

func (p *PrivatePostgres) run(name string, args ...string) {
	p.t.Helper()
	if out, err := p.command(name, args...).CombinedOutput(); err != nil {
		p.t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// serverBinaries returns the newest installed PostgreSQL's bin directory, or "".
func serverBinaries() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// By length first, so 9 sorts before 15.
	slices.SortFunc(dirs, func(a, b string) int { return cmp.Or(cmp.Compare(len(a), len(b)), strings.Compare(a, b)) })
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i]
		}
	}
	return ""
}
