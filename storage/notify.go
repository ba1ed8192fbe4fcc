package storage

import (
	"context"
	"sync"
	"time"
)

// NotifierHeartbeat is the longest a subscription that can drop stays
// silent while connected (see Notifier.Subscribe).
const NotifierHeartbeat = 200 * time.Millisecond

// Notifier is a Store that can pass short messages to every process that
// shares it, so that they can keep a copy of some of its state in memory.
// Delivery is at most once: a subscriber that was not listening when a
// message was published never gets it, so it must re-read the store after
// each (re)start of its subscription (see Subscribe).
type Notifier interface {
	Store

	// Publish sends message to the current subscribers of channel, in
	// every process sharing the store.
	Publish(ctx context.Context, channel string, message []byte) error

	// Subscribe listens on channel until ctx is done and returns at once,
	// listening or not. It calls onMessage with each message, and
	// onListening with true when it starts or restarts listening and with
	// false when it loses the connection: a message published between a
	// false and the next true may be lost. A subscription that can drop
	// (across the network) also calls onListening(true) at least every
	// NotifierHeartbeat while it is known to be connected. Calls are never
	// concurrent.
	Subscribe(ctx context.Context, channel string, onMessage func(message []byte), onListening func(listening bool))
}

// localNotifier delivers messages within this process, to the
// subscribers of a store only this process can open (Badger). Publish
// returns once every subscriber has its message.
type localNotifier struct {
	mu   sync.Mutex
	subs map[string]map[*localSubscriber]struct{}
}

type localSubscriber struct {
	sync.Mutex // serialises calls, as Subscribe promises
	onMessage  func([]byte)
}

func (n *localNotifier) Publish(ctx context.Context, channel string, message []byte) error {
	n.mu.Lock()
	subs := make([]*localSubscriber, 0, len(n.subs[channel]))
	for s := range n.subs[channel] {
		subs = append(subs, s)
	}
	n.mu.Unlock()
	for _, s := range subs {
		s.Lock()
		s.onMessage(message)
		s.Unlock()
	}
	return ctx.Err()
}

func (n *localNotifier) Subscribe(ctx context.Context, channel string, onMessage func([]byte), onListening func(bool)) {
	s := &localSubscriber{onMessage: onMessage}
	n.mu.Lock()
	if n.subs == nil {
		n.subs = map[string]map[*localSubscriber]struct{}{}
	}
	if n.subs[channel] == nil {
		n.subs[channel] = map[*localSubscriber]struct{}{}
	}
	n.subs[channel][s] = struct{}{}
	n.mu.Unlock()
	// Registered before this returns, so no later Publish is missed; in
	// one process the subscription never drops.
	onListening(true)
	context.AfterFunc(ctx, func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		delete(n.subs[channel], s)
		if len(n.subs[channel]) == 0 {
			delete(n.subs, channel)
		}
	})
}
