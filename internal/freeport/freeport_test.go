package freeport

import (
	"net"
	"strconv"
	"testing"
)

func TestPickGivesDistinctBindablePortsOutsideTheEphemeralRange(t *testing.T) {
	first, last := ephemeralRange()
	seen := map[int]bool{}
	for range 3 {
		ports, err := Pick(40)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ports {
			if seen[p] {
				t.Errorf("port %d given twice", p)
			}
			seen[p] = true
			if p >= first && p <= last {
				t.Errorf("port %d lies in the ephemeral range %d-%d", p, first, last)
			}
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				t.Errorf("port %d is not free: %v", p, err)
				continue
			}
			l.Close()
		}
	}
}

func TestPickSkipsPortsInUse(t *testing.T) {
	ports, err := Pick(1)
	if err != nil {
		t.Fatal(err)
	}
	// Hold the next port the picker would try; it must step over it.
	taken := ports[0] + 1
	if lo, hi := candidates(); taken >= hi {
		taken = lo
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(taken)))
	if err != nil {
		t.Skipf("port %d is already in use elsewhere: %v", taken, err)
	}
	defer l.Close()
	next, err := Pick(1)
	if err != nil {
		t.Fatal(err)
	}
	if next[0] == taken {
		t.Errorf("Pick gave port %d, which is in use", taken)
	}
}
