package cache

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"
	"github.com/smartcloudops/smartcloudops/internal/health"
)

// The issue accepts Sentinel and Cluster addresses in REDIS_URL. These tests
// run the cache against a private Sentinel setup (one master, one sentinel)
// and a private Cluster (three masters and a replica), each made of
// throw-away redis-server processes on free loopback ports; the shared Redis
// is never touched.

// topoNode is a throw-away redis-server (plain, cluster node or sentinel)
// on its own loopback port, killed and waited for when the test ends. Its
// output goes to a log file that is shown when the test fails.
type topoNode struct {
	port int
	dir  string
	cmd  *exec.Cmd
}

// needTopologyBinaries skips the test unless redis-server and redis-cli are
// installed. Sentinel runs as `redis-server <conf> --sentinel`, so no
// redis-sentinel binary is needed.
func needTopologyBinaries(t *testing.T) (server, cli string) {
	t.Helper()
	var err error
	if server, err = exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed (apt-get install -y redis-server): skipping the Sentinel/Cluster test")
	}
	if cli, err = exec.LookPath("redis-cli"); err != nil {
		t.Skip("redis-cli not installed (apt-get install -y redis-tools): skipping the Sentinel/Cluster test")
	}
	return server, cli
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startTopoNode runs bin with args (which must make it listen on port) and
// waits until it answers PING.
func startTopoNode(t *testing.T, name, bin string, port int, dir string, args ...string) *topoNode {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	n := &topoNode{port: port, dir: dir, cmd: exec.Command(bin, args...)}
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	if err := n.cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = n.cmd.Process.Kill()
		_ = n.cmd.Wait()
		logf.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				t.Logf("%s log (port %d):\n%s", name, port, tail(string(b), 30))
			}
		}
	})
	eventually(t, name+" to answer PING", func() bool {
		out, err := redisCLI(port, "PING")
		return err == nil && out == "PONG"
	})
	return n
}

func (n *topoNode) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(n.port)) }

// redisCLI runs one redis-cli command against 127.0.0.1:port.
func redisCLI(port int, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "redis-cli", append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(port)}, args...)...)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func tail(s string, lines int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(ls[max(len(ls)-lines, 0):], "\n")
}

// nodeClient is a rueidis client pinned to one node (no cluster or
// sentinel discovery, no client-side caching), for checks that must see
// exactly what that node holds.
func nodeClient(t *testing.T, addr string) rueidis.Client {
	t.Helper()
	cl, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, ForceSingleClient: true, DisableCache: true})
	if err != nil {
		t.Fatalf("connect to %s: %v", addr, err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// scanKeys lists the keys on one node that match pattern.
func scanKeys(t *testing.T, cl rueidis.Client, pattern string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var keys []string
	var cursor uint64
	for {
		e, err := cl.Do(ctx, cl.B().Scan().Cursor(cursor).Match(pattern).Count(1000).Build()).AsScanEntry()
		if err != nil {
			t.Fatalf("scan: %v", err)
		}
		keys = append(keys, e.Elements...)
		if cursor = e.Cursor; cursor == 0 {
			return keys
		}
	}
}

func dbsize(t *testing.T, cl rueidis.Client) int64 {
	t.Helper()
	n, err := cl.Do(context.Background(), cl.B().Dbsize().Build()).AsInt64()
	if err != nil {
		t.Fatalf("dbsize: %v", err)
	}
	return n
}

// newTopoCache builds a Cache on url with short timeouts, closed when the
// test ends.
func newTopoCache(t *testing.T, url, prefix string) *Cache {
	t.Helper()
	c, err := New(context.Background(), Options{
		RedisURL: url, KeyPrefix: prefix, Registerer: prometheus.NewRegistry(),
		DialTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if c.fallbackActive() {
		t.Fatal("cache could not connect: it is in fallback")
	}
	return c
}

func clientMode(c *Cache) rueidis.ClientMode { return c.client.Load().c.Mode() }

// checkCrossInstance has b hold key in its in-process tier, lets a
// overwrite and then delete it, and expects b to follow both through
// Redis's invalidations rather than serve its stale copy.
func checkCrossInstance(t *testing.T, a, b *Cache, ns, key string) {
	t.Helper()
	ctx := context.Background()
	if err := a.Set(ctx, ns, key, "v1", time.Minute); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b to hold "+key+"=v1 in process", func() bool {
		e, ok, _ := b.GetRaw(ctx, ns, key)
		return ok && e.Tier == TierL1 && string(e.Body) == `"v1"`
	})
	if err := a.Set(ctx, ns, key, "v2", time.Minute); err != nil {
		t.Fatal(err)
	}
	var s string
	eventually(t, "b to see "+key+"=v2", func() bool {
		ok, _ := b.Get(ctx, ns, key, &s)
		return ok && s == "v2"
	})
	if _, err := a.Delete(ctx, ns, key); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b to see "+key+" deleted", func() bool {
		ok, _ := b.Get(ctx, ns, key, &s)
		return !ok
	})
}

func checkHealthUp(t *testing.T, c *Cache) {
	t.Helper()
	got := c.Check(context.Background())
	if got.Status != health.StatusUp || got.Details["breaker"] != "closed" {
		t.Fatalf("Check = %+v, want UP with a closed breaker", got)
	}
}

// redisArgs are the arguments every throw-away server gets: its own port
// on loopback, nothing persisted, files in dir.
func redisArgs(port int, dir string, extra ...string) []string {
	return append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir}, extra...)
}

// startSentinel runs a master and one sentinel monitoring it as mymaster,
// and returns them with the cache URL that names the sentinel.
func startSentinel(t *testing.T) (master, sentinel *topoNode, url string) {
	t.Helper()
	server, _ := needTopologyBinaries(t)
	mdir, sdir := t.TempDir(), t.TempDir()
	mport := freePort(t)
	master = startTopoNode(t, "master", server, mport, mdir, redisArgs(mport, mdir)...)
	// Sentinel rewrites its configuration file, so it must be writable.
	sport := freePort(t)
	conf := filepath.Join(sdir, "sentinel.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil,
		"port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor mymaster 127.0.0.1 %d 1\n", sport, sdir, mport), 0o600); err != nil {
		t.Fatal(err)
	}
	sentinel = startTopoNode(t, "sentinel", server, sport, sdir, conf, "--sentinel")
	eventually(t, "sentinel to know the master", func() bool {
		out, err := redisCLI(sport, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster")
		return err == nil && out == "127.0.0.1\n"+strconv.Itoa(mport)
	})
	url = fmt.Sprintf("redis://127.0.0.1:%d/0?master_set=mymaster", sport)
	if err := (Options{RedisURL: url}).withDefaults().validate(); err != nil {
		t.Fatalf("sentinel URL rejected: %v", err)
	}
	return master, sentinel, url
}

// Sentinel: the URL names the sentinel and the master set; the cache finds
// the master through it.
func TestSentinelTopology(t *testing.T) {
	master, _, url := startSentinel(t)
	ctx := context.Background()
	prefix := "sco-topo:"
	a := newTopoCache(t, url, prefix)
	b := newTopoCache(t, url, prefix)
	if m := clientMode(a); m != rueidis.ClientModeSentinel {
		t.Fatalf("client mode %q, want sentinel", m)
	}
	raw := nodeClient(t, master.addr())

	// Round trip: b's in-process tier is cold, so Redis answers, and the
	// value really is on the master.
	if err := a.Set(ctx, "s", "k", "v1", time.Minute); err != nil {
		t.Fatal(err)
	}
	if e, ok, err := b.GetRaw(ctx, "s", "k"); err != nil || !ok || e.Tier != TierL2 || string(e.Body) != `"v1"` {
		t.Fatalf("b.GetRaw = %+v %v %v, want v1 from L2", e, ok, err)
	}
	if n, err := raw.Do(ctx, raw.B().Exists().Key(a.redisKey("s", "k")).Build()).AsInt64(); err != nil || n != 1 {
		t.Fatalf("key on the master: EXISTS = %d %v", n, err)
	}
	if ok, _ := b.Exists(ctx, "s", "k"); !ok {
		t.Fatal("Exists = false")
	}
	if ttl, ok, _ := b.TTL(ctx, "s", "k"); !ok || ttl <= 0 || ttl > time.Minute {
		t.Fatalf("TTL = %v %v", ttl, ok)
	}

	checkCrossInstance(t, a, b, "s", "cross")

	// ClearNamespace: b holds some of the keys in process, a clears them.
	const n = 50
	for i := range n {
		if err := a.Set(ctx, "gone", "k"+strconv.Itoa(i), i, time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := a.Set(ctx, "kept", "k"+strconv.Itoa(i), i, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "b to hold gone/k0 in process", func() bool {
		e, ok, _ := b.GetRaw(ctx, "gone", "k0")
		return ok && e.Tier == TierL1
	})
	if removed, err := a.ClearNamespace(ctx, "gone"); err != nil || removed != n {
		t.Fatalf("ClearNamespace = %d %v, want %d", removed, err, n)
	}
	if left := scanKeys(t, raw, globEscape(a.nsPrefix("gone"))+"*"); len(left) != 0 {
		t.Fatalf("%d keys of the cleared namespace left on the master: %v", len(left), left[:min(len(left), 5)])
	}
	if kept := scanKeys(t, raw, globEscape(a.nsPrefix("kept"))+"*"); len(kept) != n {
		t.Fatalf("other namespace: %d keys on the master, want %d", len(kept), n)
	}
	var v int
	eventually(t, "b to drop the cleared namespace", func() bool {
		ok, _ := b.Get(ctx, "gone", "k0", &v)
		return !ok
	})
	if ok, _ := b.Get(ctx, "kept", "k7", &v); !ok || v != 7 {
		t.Fatalf("kept/k7 = %v %d", ok, v)
	}

	if st := a.Stats(ctx); st.Mode != "redis" || st.Breaker.State != "closed" || st.L2.Entries != dbsize(t, raw) {
		t.Fatalf("Stats: mode %s breaker %+v L2 entries %d, master holds %d", st.Mode, st.Breaker, st.L2.Entries, dbsize(t, raw))
	}
	checkHealthUp(t, a)
	checkHealthUp(t, b)
}

// A sentinel that accepts connections but does not answer (here: stopped)
// must not hold New past Options.DialTimeout: the cache starts in fallback
// and connects once the sentinel answers again.
func TestSentinelHungAtStartBoundedByDialTimeout(t *testing.T) {
	_, sentinel, url := startSentinel(t)
	if err := sentinel.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// Runs before the node's own cleanup kills it.
	t.Cleanup(func() { _ = sentinel.cmd.Process.Signal(syscall.SIGCONT) })
	const dialTimeout = 300 * time.Millisecond
	start := time.Now()
	c, err := New(context.Background(), Options{
		RedisURL: url, KeyPrefix: "sco-topo:", Registerer: prometheus.NewRegistry(),
		DialTimeout: dialTimeout, HealthCheckInterval: 50 * time.Millisecond,
	})
	took := time.Since(start)
	if err != nil {
		t.Fatalf("New with a hung sentinel: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	t.Logf("New returned after %v", took)
	// rueidis's own default, 5 s, applies when the cache's is not passed on.
	if took > 2*time.Second {
		t.Fatalf("New took %v with DialTimeout %v", took, dialTimeout)
	}
	if !c.fallbackActive() || status(c) != health.StatusDegraded {
		t.Fatal("not in fallback (health DEGRADED) with the sentinel hung")
	}
	if err := sentinel.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	eventually(t, "health UP once the sentinel answers", func() bool { return status(c) == health.StatusUp })
	if tier, err := c.PutRaw(context.Background(), "s", "k", "", []byte("x"), time.Minute); err != nil || tier != TierL2 {
		t.Fatalf("PutRaw after the sentinel came back = %v %v", tier, err)
	}
}

// startCluster runs three cluster-enabled masters, joins them with
// redis-cli --cluster create, adds a fourth node as a replica of the first
// (so that code asking every node must tell masters from replicas) and
// waits until every node reports cluster_state:ok and knows the replica.
// It returns the masters and the replica.
func startCluster(t *testing.T) (masters []*topoNode, replica *topoNode) {
	t.Helper()
	server, cli := needTopologyBinaries(t)
	start := func(name string) *topoNode {
		dir := t.TempDir()
		port := freePort(t)
		return startTopoNode(t, name, server, port, dir, redisArgs(port, dir,
			"--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(dir, fmt.Sprintf("nodes-%d.conf", port)),
			// The bus port defaults to port+10000, which may be taken or
			// past 65535: give it its own free port.
			"--cluster-port", strconv.Itoa(freePort(t)),
			// A replica shows in CLUSTER SLOTS, which the client reads,
			// only once its replication offset is past 0: with no writes
			// that takes the master's first replication PING, every 10 s by
			// default. Its first sync need not wait for more replicas either.
			"--repl-ping-replica-period", "1", "--repl-diskless-sync-delay", "0",
			// A slow node must not be failed over mid-test.
			"--cluster-replica-no-failover", "yes")...)
	}
	masters = make([]*topoNode, 3)
	addrs := make([]string, len(masters))
	for i := range masters {
		masters[i] = start("master" + strconv.Itoa(i))
		addrs[i] = masters[i].addr()
	}
	replica = start("replica")
	runCLI := func(args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("redis-cli %s: %v\n%s", strings.Join(args, " "), err, tail(string(out), 20))
		}
	}
	runCLI(append(append([]string{"--cluster", "create"}, addrs...), "--cluster-replicas", "0", "--cluster-yes")...)
	runCLI("--cluster", "add-node", replica.addr(), addrs[0], "--cluster-slave")
	for _, n := range append(masters[:len(masters):len(masters)], replica) {
		eventually(t, "cluster_state:ok and four nodes on "+n.addr(), func() bool {
			out, err := redisCLI(n.port, "CLUSTER", "INFO")
			return err == nil && strings.Contains(out, "cluster_state:ok") && strings.Contains(out, "cluster_known_nodes:4")
		})
		eventually(t, n.addr()+" to know the replica as one", func() bool {
			out, err := redisCLI(n.port, "CLUSTER", "NODES")
			return err == nil && strings.Count(out, "slave") == 1 && strings.Count(out, "master") == 3
		})
	}
	eventually(t, "the replica to sync", func() bool {
		out, err := redisCLI(replica.port, "INFO", "replication")
		return err == nil && strings.Contains(out, "master_link_status:up")
	})
	// CLUSTER SLOTS, which the client reads, lists a replica only once its
	// replication offset has reached the masters through the cluster bus.
	for _, n := range masters {
		eventually(t, n.addr()+" to list the replica in CLUSTER SLOTS", func() bool {
			out, err := redisCLI(n.port, "CLUSTER", "SLOTS")
			return err == nil && slices.Contains(strings.Split(out, "\n"), strconv.Itoa(replica.port))
		})
	}
	return masters, replica
}

// waitClusterRefreshes waits for rueidis's cluster clients to finish their
// delayed work. A topology refresh that replaces a connection (as one racing
// the first dials of a new client can) closes the old one from a goroutine
// that first sleeps 5 s, past Close; the package's goleak check would
// report it if the test ended sooner.
func waitClusterRefreshes(t *testing.T) {
	t.Helper()
	eventually(t, "rueidis's delayed connection closes", func() bool {
		buf := make([]byte, 1<<20)
		for {
			n := runtime.Stack(buf, true)
			if n < len(buf) {
				return !strings.Contains(string(buf[:n]), "rueidis.(*clusterClient)._refresh.func")
			}
			buf = make([]byte, 2*len(buf))
		}
	})
}

// Cluster: the URL lists the nodes; keys spread over every master's slots.
func TestClusterTopology(t *testing.T) {
	nodes, replica := startCluster(t)
	ctx := context.Background()
	url := "redis://" + nodes[0].addr() + "?addr=" + nodes[1].addr() + "&addr=" + nodes[2].addr()
	if err := (Options{RedisURL: url}).withDefaults().validate(); err != nil {
		t.Fatalf("cluster URL rejected: %v", err)
	}
	// Registered first, so it runs after the caches are closed.
	t.Cleanup(func() { waitClusterRefreshes(t) })
	prefix := "sco-topo:"
	a := newTopoCache(t, url, prefix)
	b := newTopoCache(t, url, prefix)
	if m := clientMode(a); m != rueidis.ClientModeCluster {
		t.Fatalf("client mode %q, want cluster", m)
	}
	if got := len(a.client.Load().c.Nodes()); got != 4 {
		t.Fatalf("the client knows %d nodes, want the 3 masters and the replica", got)
	}
	raw := make([]rueidis.Client, len(nodes))
	for i, n := range nodes {
		raw[i] = nodeClient(t, n.addr())
	}

	const n = 200
	for _, ns := range []string{"alpha", "beta"} {
		for i := range n {
			if err := a.Set(ctx, ns, "k"+strconv.Itoa(i), ns+strconv.Itoa(i), time.Minute); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The keys really are spread: every node holds some of each namespace.
	// keyNode remembers one key per node for the per-node checks below.
	var keyNode [3]string
	for i, cl := range raw {
		for _, ns := range []string{"alpha", "beta"} {
			keys := scanKeys(t, cl, globEscape(a.nsPrefix(ns))+"*")
			if len(keys) == 0 || len(keys) == n {
				t.Fatalf("node %d holds %d of %d %s keys: not spread over the cluster", i, len(keys), n, ns)
			}
			if ns == "alpha" {
				keyNode[i] = strings.TrimPrefix(keys[0], a.nsPrefix(ns))
			}
		}
	}

	// Every key reads back through Redis (b's in-process tier is cold).
	for i := range n {
		e, ok, err := b.GetRaw(ctx, "alpha", "k"+strconv.Itoa(i))
		if err != nil || !ok || e.Tier != TierL2 || string(e.Body) != `"alpha`+strconv.Itoa(i)+`"` {
			t.Fatalf("b.GetRaw(alpha/k%d) = %+v %v %v, want it from L2", i, e, ok, err)
		}
	}
	// Exists, TTL and Delete on a key of every node.
	for i, k := range keyNode {
		if ok, err := b.Exists(ctx, "alpha", k); err != nil || !ok {
			t.Fatalf("node %d: Exists(%s) = %v %v", i, k, ok, err)
		}
		if ttl, ok, err := b.TTL(ctx, "alpha", k); err != nil || !ok || ttl <= 0 || ttl > time.Minute {
			t.Fatalf("node %d: TTL(%s) = %v %v %v", i, k, ttl, ok, err)
		}
		if existed, err := b.Delete(ctx, "alpha", k); err != nil || !existed {
			t.Fatalf("node %d: Delete(%s) = %v %v", i, k, existed, err)
		}
		if ok, _ := b.Exists(ctx, "alpha", k); ok {
			t.Fatalf("node %d: %s exists after Delete", i, k)
		}
		if _, ok, _ := b.TTL(ctx, "alpha", k); ok {
			t.Fatalf("node %d: TTL finds %s after Delete", i, k)
		}
		// a wrote the key and holds it in process until the delete's
		// invalidation reaches it from that node.
		eventually(t, fmt.Sprintf("a to see %s (node %d) deleted", k, i), func() bool {
			ok, _ := a.Exists(ctx, "alpha", k)
			return !ok
		})
	}
	// Invalidation crosses instances whichever node holds the key.
	for _, k := range keyNode {
		checkCrossInstance(t, a, b, "alpha", k)
	}

	total := func() (sum int64) {
		for _, cl := range raw {
			sum += dbsize(t, cl)
		}
		return sum
	}
	if want := int64(2*n - len(keyNode)); total() != want {
		t.Fatalf("cluster holds %d keys, want %d", total(), want)
	}
	// Stats counts every master's keys, and the replica's copies of the
	// first master's keys not again.
	rawReplica := nodeClient(t, replica.addr())
	eventually(t, "the replica to hold the first master's keys", func() bool {
		return dbsize(t, rawReplica) == dbsize(t, raw[0])
	})
	if st := a.Stats(ctx); st.Mode != "redis" || st.Breaker.State != "closed" || st.L2.Entries != total() || st.L2.Bytes <= 0 {
		t.Errorf("Stats: mode %s breaker %+v L2 entries %d bytes %d, the cluster holds %d keys",
			st.Mode, st.Breaker, st.L2.Entries, st.L2.Bytes, total())
	}
	checkHealthUp(t, a)
	checkHealthUp(t, b)

	// b holds alpha keys of every node in process; a clears alpha.
	for i := range n {
		_, _, _ = b.GetRaw(ctx, "alpha", "k"+strconv.Itoa(i))
	}
	removed, err := a.ClearNamespace(ctx, "alpha")
	if want := int64(n - len(keyNode)); err != nil || removed != want {
		t.Fatalf("ClearNamespace = %d %v, want %d", removed, err, want)
	}
	for i, cl := range raw {
		if left := scanKeys(t, cl, globEscape(a.nsPrefix("alpha"))+"*"); len(left) != 0 {
			t.Errorf("node %d: %d keys of the cleared namespace left: %v", i, len(left), left[:min(len(left), 5)])
		}
		if kept := scanKeys(t, cl, globEscape(a.nsPrefix("beta"))+"*"); len(kept) == 0 {
			t.Errorf("node %d: the other namespace's keys are gone too", i)
		}
	}
	if total() != n {
		t.Fatalf("cluster holds %d keys after the clear, want the %d of the other namespace", total(), n)
	}
	var s string
	eventually(t, "b to drop every cleared key", func() bool {
		for i := range n {
			if ok, _ := b.Get(ctx, "alpha", "k"+strconv.Itoa(i), &s); ok {
				return false
			}
		}
		return true
	})
	for i := range n {
		if ok, _ := b.Get(ctx, "beta", "k"+strconv.Itoa(i), &s); !ok || s != "beta"+strconv.Itoa(i) {
			t.Fatalf("beta/k%d = %v %q after clearing alpha", i, ok, s)
		}
	}
	if st := b.Stats(ctx); st.L2.Entries != n {
		t.Errorf("Stats after the clear: L2 entries %d, want %d", st.L2.Entries, n)
	}
	eventually(t, "the replica to follow the clear", func() bool {
		return dbsize(t, rawReplica) == dbsize(t, raw[0])
	})
	checkHealthUp(t, a)
}
