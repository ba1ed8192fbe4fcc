// Package redistest runs real redis-server processes for tests: a
// standalone server, a server that speaks only TLS to an ACL user, a master
// with a replica watched by Sentinel, and a Cluster.
package redistest

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/freeport"
)

// startTimeout bounds how long a server or a topology takes to come up.
const startTimeout = 10 * time.Second

// Start starts a throwaway redis-server on a free loopback port, with
// extra command-line arguments, stops it when the test ends, and returns
// its URL. Without redis-server on PATH the test is skipped, or fails when
// CI is set (scripts/setup-e2e.sh installs it).
func Start(t testing.TB, extra ...string) string {
	t.Helper()
	return "redis://" + StartServer(t, extra...) + "/0"
}

// StartServer is Start, but returns the server's host:port.
func StartServer(t testing.TB, extra ...string) string {
	t.Helper()
	return launch(t, func(port int, dir string) []string {
		return append([]string{"--save", "", "--appendonly", "no",
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir}, extra...)
	}, dialTCP)
}

// TLS is a server that speaks only TLS and knows one ACL user.
type TLS struct {
	// URL is the rediss:// URL of the server, with the user and password.
	URL string
	// CAFile is the PEM file of the CA that signed the server's
	// certificate, for SSL_CERT_FILE.
	CAFile string
}

// StartTLS starts a server that listens only for TLS, with a certificate
// for 127.0.0.1 from a CA of its own, where the default user is off and
// user logs in with password and has the ACL rules, such as "~app:*" and
// "+@read". Without TLS support in redis-server the test is skipped.
func StartTLS(t testing.TB, user, password string, rules ...string) TLS {
	t.Helper()
	dir := t.TempDir()
	caFile, certFile, keyFile := writeCertificates(t, dir)
	roots := x509.NewCertPool()
	pemCA, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots.AppendCertsFromPEM(pemCA)
	addr, err := tryLaunch(t, func(port int, dir string) []string {
		args := []string{"--save", "", "--appendonly", "no", "--port", "0",
			"--tls-port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
			"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--tls-ca-cert-file", caFile,
			"--tls-auth-clients", "no",
			"--user", "default", "off",
			"--user", user, "on", ">" + password}
		return append(args, rules...)
	}, func(addr string) (net.Conn, error) {
		return tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr,
			&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12})
	})
	if err != nil {
		// A build without TLS fails on the tls-* directives.
		if strings.Contains(err.Error(), "TLS") || strings.Contains(err.Error(), "tls") {
			t.Skipf("redis-server does not run with TLS, probably not built with it: %v", err)
		}
		t.Fatal(err)
	}
	return TLS{URL: fmt.Sprintf("rediss://%s:%s@%s/0", user, password, addr), CAFile: caFile}
}

// Sentinel is a master with one replica, watched by three sentinels.
type Sentinel struct {
	// URL is the redis-sentinel:// URL of the store, naming every
	// sentinel.
	URL string
	// Master is the name the sentinels know the master by.
	Master string
	// SentinelAddr is the host:port of the first sentinel.
	SentinelAddr string

	master  *server
	replica string // host:port
}

// sentinels is how many sentinels watch the master; a majority of them
// (the quorum) must agree that it is down before one promotes the replica.
const sentinels = 3

// StartSentinel starts a master, a replica of it and three sentinels that
// watch them under the name "mymaster", and waits until every sentinel
// knows the replica and the other sentinels, so that a failover can
// promote it, planned (Failover) or not (KillMaster).
func StartSentinel(t testing.TB) Sentinel {
	t.Helper()
	const name = "mymaster"
	binary(t, "redis-cli") // for command
	master, err := tryStart(t, func(port int, dir string) []string {
		return []string{"--save", "", "--appendonly", "no",
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir}
	}, dialTCP)
	if err != nil {
		t.Fatal(err)
	}
	host, masterPort, _ := net.SplitHostPort(master.addr)
	replica := StartServer(t, "--replicaof", host, masterPort)
	waitFor(t, "the replica to sync", func() (bool, error) {
		info, err := command(replica, "INFO", "replication")
		return strings.Contains(info, "master_link_status:up"), err
	})
	var addrs []string
	for range sentinels {
		addrs = append(addrs, launch(t, func(port int, dir string) []string {
			conf := filepath.Join(dir, "sentinel.conf")
			body := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\n"+
				"sentinel monitor %s %s %s %d\n"+
				"sentinel down-after-milliseconds %[3]s 1000\n"+
				"sentinel failover-timeout %[3]s 5000\n", port, dir, name, host, masterPort, sentinels/2+1)
			if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			return []string{conf, "--sentinel"}
		}, dialTCP))
	}
	for _, sentinel := range addrs {
		waitFor(t, "the sentinel at "+sentinel+" to know the replica and the other sentinels", func() (bool, error) {
			out, err := command(sentinel, "SENTINEL", "REPLICAS", name)
			if err != nil || !strings.Contains(out, replica[strings.LastIndex(replica, ":")+1:]) ||
				strings.Contains(out, "disconnected") || strings.Contains(out, "s_down") {
				return false, err
			}
			out, err = command(sentinel, "SENTINEL", "SENTINELS", name)
			known := 0
			for line := range strings.Lines(out) {
				if strings.TrimSpace(line) == "name" {
					known++
				}
			}
			return known == sentinels-1, err
		})
	}
	return Sentinel{
		URL:          fmt.Sprintf("redis-sentinel://%s/0?addr=%s&master_name=%s", addrs[0], strings.Join(addrs[1:], "&addr="), name),
		Master:       name,
		SentinelAddr: addrs[0],
		master:       master,
		replica:      replica,
	}
}

// Failover waits until the replica has every write the master
// acknowledged, as in a planned failover, makes the sentinel promote it,
// and waits until the sentinels name it as the master and it is one.
func (s Sentinel) Failover(t testing.TB) {
	t.Helper()
	s.WaitReplicated(t)
	if out, err := command(s.SentinelAddr, "SENTINEL", "FAILOVER", s.Master); err != nil || out != "OK" {
		t.Fatalf("SENTINEL FAILOVER: %q, %v", out, err)
	}
	s.waitPromoted(t)
}

// WaitReplicated waits until the replica has applied every write the
// master had acknowledged when it was called.
func (s Sentinel) WaitReplicated(t testing.TB) {
	t.Helper()
	offset := func(addr string) (int64, error) {
		info, err := command(addr, "INFO", "replication")
		if err != nil {
			return 0, err
		}
		for line := range strings.Lines(info) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "master_repl_offset:"); ok {
				return strconv.ParseInt(v, 10, 64)
			}
		}
		return 0, fmt.Errorf("no master_repl_offset in %q", info)
	}
	want, err := offset(s.master.addr)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the replica to catch up with the master", func() (bool, error) {
		got, err := offset(s.replica)
		return got >= want, err
	})
}

// KillMaster ends the master with SIGKILL, as a crash would, and waits
// until the sentinels have promoted the replica. Writes the replica had
// not received are lost, as they would be in production. It returns when
// the replica was last seen not promoted yet: there was no master until
// then.
func (s Sentinel) KillMaster(t testing.TB) (notPromotedAt time.Time) {
	t.Helper()
	s.master.kill()
	return s.waitPromoted(t)
}

// waitPromoted waits until the sentinel names the replica as the master
// and it is one, and returns when it last found that it was not.
func (s Sentinel) waitPromoted(t testing.TB) time.Time {
	t.Helper()
	// An election the sentinels fail is tried again after twice the
	// failover timeout.
	return waitWithin(t, "the failover", 3*startTimeout, func() (bool, error) {
		now, err := command(s.SentinelAddr, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", s.Master)
		host, port, _ := strings.Cut(now, "\n")
		if err != nil || net.JoinHostPort(host, port) != s.replica {
			return false, err
		}
		info, err := command(s.replica, "INFO", "replication")
		return strings.Contains(info, "role:master"), err
	})
}

// StartCluster starts three masters, each with a third of the slots, and
// returns the redis-cluster:// URL that names them all.
func StartCluster(t testing.TB) string {
	t.Helper()
	cli := binary(t, "redis-cli")
	var addrs []string
	for range 3 {
		addrs = append(addrs, launch(t, func(port int, dir string) []string {
			return []string{"--save", "", "--appendonly", "no",
				"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
				"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
				// The bus would be port+10000, which may be taken or
				// beyond 65535.
				"--cluster-port", strconv.Itoa(freeport.One())}
		}, dialTCP))
	}
	args := append(append([]string{"--cluster", "create"}, addrs...), "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, addr := range addrs {
		waitFor(t, "the cluster to form at "+addr, func() (bool, error) {
			info, err := command(addr, "CLUSTER", "INFO")
			return strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_known_nodes:3"), err
		})
	}
	return "redis-cluster://" + addrs[0] + "?addr=" + addrs[1] + "&addr=" + addrs[2]
}

// launch starts redis-server with the arguments that args gives for a free
// loopback port and a directory of its own, waits until it answers PING on
// a connection from dial, stops it when the test ends, and returns its
// host:port.
func launch(t testing.TB, args func(port int, dir string) []string, dial func(addr string) (net.Conn, error)) string {
	t.Helper()
	addr, err := tryLaunch(t, args, dial)
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// tryLaunch is launch, but returns why redis-server did not start, with
// its output.
func tryLaunch(t testing.TB, args func(port int, dir string) []string, dial func(addr string) (net.Conn, error)) (string, error) {
	t.Helper()
	p, err := tryStart(t, args, dial)
	if err != nil {
		return "", err
	}
	return p.addr, nil
}

// server is a running redis-server.
type server struct {
	addr   string
	cmd    *exec.Cmd
	exited chan struct{} // closed once the process is gone
}

// kill ends the server at once, as a crash would, and waits until it is
// gone.
func (s *server) kill() {
	_ = s.cmd.Process.Kill()
	<-s.exited
}

// tryStart is tryLaunch, returning the server's process.
func tryStart(t testing.TB, args func(port int, dir string) []string, dial func(addr string) (net.Conn, error)) (*server, error) {
	t.Helper()
	// Another process may bind the picked port before redis-server does.
	var lastErr error
	for range 3 {
		port := freeport.One()
		var out bytes.Buffer
		p, err := run(t, args(port, t.TempDir()), &out)
		if err != nil {
			t.Fatalf("starting redis-server: %v", err)
		}
		p.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if lastErr = waitForRedis(p.addr, p.exited, dial); lastErr == nil {
			t.Cleanup(p.kill)
			return p, nil
		}
		p.kill()
		lastErr = fmt.Errorf("%w\n%s", lastErr, out.Bytes())
	}
	return nil, fmt.Errorf("redis-server did not start: %w", lastErr)
}

// run starts redis-server with args, its output going to out.
func run(t testing.TB, args []string, out *bytes.Buffer) (*server, error) {
	cmd := exec.Command(binary(t, "redis-server"), args...)
	if out != nil {
		cmd.Stdout, cmd.Stderr = out, out
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &server{cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	return p, nil
}

// binary finds the Redis program name (redis-server, redis-cli), or skips
// the test (fails it when CI is set) without it.
func binary(t testing.TB, name string) string {
	t.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		msg := name + " is not on PATH; scripts/setup-e2e.sh installs it"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return bin
}

func dialTCP(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, time.Second) }

// waitForRedis waits until the server at addr answers PING.
func waitForRedis(addr string, exited <-chan struct{}, dial func(addr string) (net.Conn, error)) error {
	deadline := time.Now().Add(startTimeout)
	for {
		conn, err := dial(addr)
		if err == nil {
			_ = conn.SetDeadline(time.Now().Add(time.Second))
			_, err = conn.Write([]byte("PING\r\n"))
			var line string
			if err == nil {
				line, err = bufio.NewReader(conn).ReadString('\n')
			}
			conn.Close()
			// A server with the default user off answers NOAUTH: it is up.
			if err == nil && (line == "+PONG\r\n" || strings.HasPrefix(line, "-NOAUTH")) {
				return nil
			}
		}
		select {
		case <-exited:
			return errors.New("redis-server exited")
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no PONG from %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitFor polls done until it reports true, failing the test after
// startTimeout.
func waitFor(t testing.TB, what string, done func() (bool, error)) {
	t.Helper()
	waitWithin(t, what, startTimeout, done)
}

// waitWithin is waitFor with another timeout; it returns when the last
// call of done that reported false began.
func waitWithin(t testing.TB, what string, timeout time.Duration, done func() (bool, error)) (lastFalse time.Time) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		began := time.Now()
		ok, err := done()
		if ok {
			return lastFalse
		}
		lastFalse = began
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (last error: %v)", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// command runs one command with redis-cli against the plain-TCP server at
// addr and returns its output, trimmed.
func command(addr string, args ...string) (string, error) {
	host, port, _ := net.SplitHostPort(addr)
	out, err := exec.Command("redis-cli", append([]string{"-h", host, "-p", port}, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// writeCertificates writes a CA and a certificate for 127.0.0.1 signed by
// it into dir, and returns the paths of the CA's certificate, the server's
// certificate and the server's key.
func writeCertificates(t testing.TB, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey, serverKey := newKey(), newKey()
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "redistest CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	server := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage:    x509.KeyUsageDigitalSignature,
	}
	serverDER, err := x509.CreateCertificate(rand.Reader, server, ca, &serverKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(serverKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, kind string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("server.pem", "CERTIFICATE", serverDER),
		write("server-key.pem", "EC PRIVATE KEY", keyDER)
}

// Restartable is a standalone server that a test can stop, or kill, and
// start again at the same address, with its data: every write is synced to
// an append-only file before it is acknowledged.
type Restartable struct {
	// URL is the redis:// URL of the server.
	URL string

	t    testing.TB
	port int
	dir  string
	proc *server
}

// StartRestartable starts a Restartable server; it stops when the test
// ends.
func StartRestartable(t testing.TB) *Restartable {
	t.Helper()
	r := &Restartable{t: t, dir: t.TempDir()}
	p, err := tryStart(t, func(port int, _ string) []string {
		r.port = port
		return r.args()
	}, dialTCP)
	if err != nil {
		t.Fatal(err)
	}
	r.proc, r.URL = p, "redis://"+p.addr+"/0"
	return r
}

func (r *Restartable) args() []string {
	return []string{"--save", "", "--appendonly", "yes", "--appendfsync", "always",
		"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--dir", r.dir}
}

// Stop shuts the server down at once and waits until its port is closed.
func (r *Restartable) Stop() {
	r.t.Helper()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port))
	_, _ = command(addr, "SHUTDOWN", "NOSAVE") // it closes the connection instead of answering
	waitFor(r.t, "redis-server to stop", func() (bool, error) {
		conn, err := dialTCP(addr)
		if err == nil {
			conn.Close()
		}
		return err != nil, nil
	})
}

// Kill ends the server with SIGKILL, as a crash or the OOM killer would,
// and waits until it is gone.
func (r *Restartable) Kill() { r.proc.kill() }

// Restart starts the stopped server again at the same address, from its
// append-only file.
func (r *Restartable) Restart() {
	r.t.Helper()
	p, err := run(r.t, r.args(), nil)
	if err != nil {
		r.t.Fatalf("restarting redis-server: %v", err)
	}
	r.t.Cleanup(p.kill)
	r.proc = p
	if err := waitForRedis(net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)), p.exited, dialTCP); err != nil {
		r.t.Fatal(err)
	}
}
