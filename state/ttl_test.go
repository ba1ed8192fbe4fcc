package state

import (
	"testing"
	"time"
)

func TestTTLUntilNeverGivesAnImmortalRecord(t *testing.T) {
	now := time.Now().Unix()
	for _, deadline := range []int64{now - 3600, now - 1, now} {
		if ttl, live := ttlUntil(deadline); live || ttl > 0 {
			t.Errorf("deadline %d s from now: ttl %v, live %v; want not live", deadline-now, ttl, live)
		}
	}
	if ttl, live := ttlUntil(now + 60); !live || ttl <= 58*time.Second || ttl > 60*time.Second {
		t.Errorf("deadline in a minute: ttl %v, live %v", ttl, live)
	}
}
