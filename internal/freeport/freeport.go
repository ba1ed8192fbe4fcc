// Package freeport picks TCP ports for servers that tests and benchmarks
// must name before they start them.
//
// A port the kernel hands out for ":0" comes from its ephemeral range, the
// same range every outgoing connection takes its local port from: between
// the pick and the bind, or while a server restarts on the same port, a
// client connection elsewhere on the machine can take it. The ports given
// here lie outside that range, so only another explicit bind can take them.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// lowest is the first port considered: below it lie well-known and
// commonly configured service ports.
const lowest = 10000

var (
	mu   sync.Mutex
	next int // the port to try next; 0 before the first pick
)

// Pick returns n distinct ports that are free on 127.0.0.1 now. Ports are
// taken in turn from a random start, so one process never gets a port twice
// and two processes rarely try the same one.
func Pick(n int) ([]int, error) {
	lo, hi := candidates()
	mu.Lock()
	defer mu.Unlock()
	if next < lo || next >= hi {
		next = lo + rand.IntN(hi-lo)
	}
	var ports []int
	for tried := 0; len(ports) < n && tried < hi-lo; tried++ {
		port := next
		if next++; next == hi {
			next = lo
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		l.Close()
		ports = append(ports, port)
	}
	if len(ports) < n {
		return nil, fmt.Errorf("freeport: fewer than %d free ports in %d-%d", n, lo, hi-1)
	}
	return ports, nil
}

// One returns one free port, and panics when there is none: it is for
// tests, where no port means the machine cannot run them.
func One() int {
	ports, err := Pick(1)
	if err != nil {
		panic(err)
	}
	return ports[0]
}

// candidates returns the half-open range [lo, hi) ports are picked from:
// the ports between lowest and the ephemeral range, or those above it when
// the range starts too low to leave room below.
func candidates() (lo, hi int) {
	first, last := ephemeralRange()
	switch {
	case first-lowest >= 1000:
		return lowest, first
	case 65535-last >= 1000:
		return last + 1, 65536
	default:
		return lowest, 65536
	}
}

// ephemeralRange reads Linux's ephemeral port range, and assumes its
// default where it cannot be read.
func ephemeralRange() (first, last int) {
	first, last = 32768, 60999
	raw, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return first, last
	}
	fields := strings.Fields(string(raw))
	if len(fields) != 2 {
		return first, last
	}
	f, err1 := strconv.Atoi(fields[0])
	l, err2 := strconv.Atoi(fields[1])
	if err1 != nil || err2 != nil || f > l {
		return first, last
	}
	return f, l
}
