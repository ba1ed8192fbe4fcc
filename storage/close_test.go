package storage

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCloseWithinGivesUpOnAHungClose(t *testing.T) {
	hung := make(chan struct{})
	defer close(hung)
	start := time.Now()
	err := closeWithin(50*time.Millisecond, `badger database "/gone"`, func() error { <-hung; return nil })
	if err == nil || !strings.Contains(err.Error(), `badger database "/gone"`) {
		t.Errorf("a close that hangs: %v, want an error naming the store", err)
	}
	if waited := time.Since(start); waited > time.Second {
		t.Errorf("waited %s for a close bounded by 50ms", waited)
	}

	failed := errors.New("disk error")
	if err := closeWithin(time.Second, "x", func() error { return failed }); err != failed {
		t.Errorf("a close that fails in time: %v, want its own error", err)
	}
	if err := closeWithin(time.Second, "x", func() error { return nil }); err != nil {
		t.Errorf("a close that succeeds: %v", err)
	}
}
