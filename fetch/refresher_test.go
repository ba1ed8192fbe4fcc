package fetch

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestRefresherFetchesOneAtATime(t *testing.T) {
	var calls atomic.Int32
	release := make(chan struct{})
	r := &Refresher[int]{Timeout: time.Second, Fetch: func(ctx context.Context) (int, error) {
		calls.Add(1)
		<-release
		return 7, nil
	}}
	first := r.Start(0)
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if done := r.Start(0); done != first {
				t.Error("a second fetch started while one runs")
			}
		})
	}
	wg.Wait()
	close(release)
	Wait(context.Background(), first, 0)
	if s := r.State(); !s.Have || s.Value != 7 || calls.Load() != 1 {
		t.Errorf("state %+v after %d fetches, want 7 after 1", s, calls.Load())
	}
	if r.Running() != nil {
		t.Error("a fetch still runs")
	}
}

func TestRefresherKeepsTheValueAfterAFailure(t *testing.T) {
	clock := time.Unix(1_800_000_000, 0)
	fail := false
	r := &Refresher[string]{Timeout: time.Second, Now: func() time.Time { return clock }, Fetch: func(context.Context) (string, error) {
		if fail {
			return "", errors.New("down")
		}
		return "v1", nil
	}}
	Wait(context.Background(), r.Start(0), 0)
	fail = true
	clock = clock.Add(time.Minute)
	Wait(context.Background(), r.Start(10*time.Second), 0)
	s := r.State()
	if !s.Have || s.Value != "v1" || s.Err == nil || !s.Failed.Equal(clock) || !s.Started.Equal(clock) {
		t.Errorf("after a failed refresh: %+v", s)
	}
	if done := r.Start(10 * time.Second); done != nil {
		t.Error("a fetch started within minInterval of the last")
	}
}

func TestRefresherOutlivesItsCaller(t *testing.T) {
	r := &Refresher[int]{Timeout: time.Second, Fetch: func(ctx context.Context) (int, error) {
		time.Sleep(20 * time.Millisecond)
		return 1, ctx.Err()
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := r.Start(0)
	cancel()
	start := time.Now()
	Wait(ctx, done, 0)
	if time.Since(start) > 10*time.Millisecond {
		t.Error("Wait outlived its context")
	}
	<-done
	if s := r.State(); s.Err != nil || !s.Have {
		t.Errorf("the caller going away failed the fetch: %+v", s)
	}
}

func TestWaitIsBounded(t *testing.T) {
	start := time.Now()
	Wait(context.Background(), make(chan struct{}), 30*time.Millisecond)
	if d := time.Since(start); d < 30*time.Millisecond || d > time.Second {
		t.Errorf("waited %v, want about 30ms", d)
	}
}
