// Package redistest runs a real redis-server for tests.
package redistest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// Start starts a throwaway redis-server on a free loopback port, with
// extra command-line arguments, stops it when the test ends, and returns
// its URL. Without redis-server on PATH the test is skipped, or fails when
// CI is set (scripts/setup-e2e.sh installs it).
func Start(t testing.TB, extra ...string) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		msg := "redis-server is not on PATH; scripts/setup-e2e.sh installs it"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	// The port may be taken between freePort and redis-server binding it.
	var lastErr error
	for range 3 {
		port := freePort(t)
		var out bytes.Buffer
		args := append([]string{"--save", "", "--appendonly", "no",
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", t.TempDir()}, extra...)
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting redis-server: %v", err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		stop := func() {
			_ = cmd.Process.Kill()
			<-exited
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if lastErr = waitForRedis(addr, exited); lastErr == nil {
			t.Cleanup(stop)
			return "redis://" + addr + "/0"
		}
		stop()
		lastErr = fmt.Errorf("%w\n%s", lastErr, out.Bytes())
	}
	t.Fatalf("redis-server did not start: %v", lastErr)
	return ""
}

// waitForRedis waits until the server at addr answers PING.
func waitForRedis(addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = conn.SetDeadline(time.Now().Add(time.Second))
			_, err = conn.Write([]byte("PING\r\n"))
			var line string
			if err == nil {
				line, err = bufio.NewReader(conn).ReadString('\n')
			}
			conn.Close()
			if err == nil && line == "+PONG\r\n" {
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

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
