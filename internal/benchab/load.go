package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// loadClient keeps conns connections alive to one host.
func loadClient(conns int) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, DisableCompression: true,
	}}
}

// tokenLoad drives a token endpoint for d over conns connections with
// the refresh token families in file (as written by families): each
// connection sends refresh requests one after another. With rotate, target
// is the token endpoint: each answer's refresh token is the next one sent,
// a connection takes a fresh family after rotationsPerFamily rotations, and
// the file is rewritten with the families no connection took. Without,
// target is anything else (Caddy's respond), which gets the requests of the
// first conns families, unchanged, and must answer 200. A request is never
// cut off at the deadline, so no rotation is lost. It prints "requests
// requests/s p50 p75 p90 p99", latencies in µs.
func tokenLoad(file, target string, d time.Duration, conns int, rotate bool) error {
	pool, err := readFamilies(file)
	if err != nil {
		return err
	}
	if len(pool) < conns {
		return fmt.Errorf("%s: %d families for %d connections", file, len(pool), conns)
	}
	var taken atomic.Int64
	take := func() (family, bool) {
		i := taken.Add(1) - 1
		if i >= int64(len(pool)) {
			return family{}, false
		}
		return pool[i], true
	}
	client := loadClient(conns)
	latencies := make([][]time.Duration, conns)
	errs := make([]error, conns)
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Go(func() {
			f, rotations := pool[i], 0
			if rotate {
				f, _ = take() // there are at least conns families
			}
			for time.Now().Before(deadline) {
				if rotate && rotations == rotationsPerFamily {
					var ok bool
					if f, ok = take(); !ok {
						errs[i] = fmt.Errorf("%s: all %d families used up", file, len(pool))
						return
					}
					rotations = 0
				}
				form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {f.refresh}, "client_id": {f.clientID}}.Encode()
				sent := time.Now()
				resp, err := client.Post(target, "application/x-www-form-urlencoded", strings.NewReader(form))
				if err != nil {
					errs[i] = err
					return
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				latencies[i] = append(latencies[i], time.Since(sent))
				if err != nil || resp.StatusCode != http.StatusOK {
					errs[i] = fmt.Errorf("%s: status %d: %s", target, resp.StatusCode, body)
					return
				}
				if rotate {
					var answer struct {
						RefreshToken string `json:"refresh_token"`
					}
					if json.Unmarshal(body, &answer) != nil || answer.RefreshToken == "" {
						errs[i] = fmt.Errorf("%s: no refresh_token in %s", target, body)
						return
					}
					f.refresh = answer.RefreshToken
					rotations++
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if rotate {
		// Saved even after an error: the families no connection took stay usable.
		var left strings.Builder
		for _, f := range pool[min(taken.Load(), int64(len(pool))):] {
			fmt.Fprintf(&left, "%s %s\n", f.clientID, f.refresh)
		}
		if err := os.WriteFile(file, []byte(left.String()), 0o600); err != nil {
			return err
		}
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	all := slices.Concat(latencies...)
	slices.Sort(all)
	fmt.Printf("%d %.1f %s\n", len(all), float64(len(all))/elapsed.Seconds(), percentiles(all, 50, 75, 90, 99))
	return nil
}

// percentiles formats the given percentiles of sorted, in µs.
func percentiles(sorted []time.Duration, ps ...int) string {
	var out []string
	for _, p := range ps {
		v := 0.0
		if len(sorted) > 0 {
			v = float64(sorted[(len(sorted)-1)*p/100].Nanoseconds()) / 1e3
		}
		out = append(out, fmt.Sprintf("%.1f", v))
	}
	return strings.Join(out, " ")
}

// registrations registers n public clients over conns connections kept
// alive, as MCP clients that register anew on every start do, and prints
// "registrations seconds".
func registrations(issuer string, n, conns int) error {
	client := loadClient(conns)
	body, _ := json.Marshal(registrationRequest([]string{"authorization_code"}))
	var next atomic.Int64
	errs := make([]error, conns)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range conns {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				resp, err := client.Post(issuer+"/register", "application/json", bytes.NewReader(body))
				if err != nil {
					errs[i] = err
					return
				}
				answer, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					errs[i] = fmt.Errorf("register: status %d: %s", resp.StatusCode, answer)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	fmt.Printf("%d %.1f\n", n, time.Since(start).Seconds())
	return nil
}
