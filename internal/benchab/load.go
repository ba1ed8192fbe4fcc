package main

import (
	"bytes"
	"encoding/json"
	"errors"
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

// tokenLoad drives a token endpoint, or something to compare it with, for
// d over conns connections, each sending the requests of a token request
// file one after another:
//
//   - refresh: each answer's refresh token is the next one its connection
//     sends, and after rotationsPerFamily rotations the connection takes a
//     family no connection has taken; the file keeps the ones left.
//   - exchange: each connection takes a code no connection has taken for
//     each request.
//   - replay: the file's requests, unchanged, one per connection and
//     over again, to anything else (Caddy's respond), which must answer 200.
//
// In refresh and exchange, a connection stops when none is left (the run
// was faster than the families or codes made for it), and the rate is
// over the time until the last one stopped.
// A request is never cut off at the deadline, so no rotation is lost. It
// prints "requests requests/s p50 p75 p90 p99", latencies in µs.
func tokenLoad(mode, file, target string, d time.Duration, conns int) error {
	bodies, err := readLines(file)
	if err != nil {
		return err
	}
	if len(bodies) == 0 || mode != "replay" && len(bodies) < conns {
		return fmt.Errorf("%s: %d token requests for %d connections", file, len(bodies), conns)
	}
	var taken atomic.Int64
	take := func() (string, bool) {
		i := taken.Add(1) - 1
		if i >= int64(len(bodies)) {
			return "", false
		}
		return bodies[i], true
	}
	client := loadClient(conns)
	latencies := make([][]time.Duration, conns)
	errs := make([]error, conns)
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Go(func() {
			body, uses := bodies[i%len(bodies)], 0
			if mode != "replay" {
				body, _ = take() // there are at least conns
			}
			for time.Now().Before(deadline) {
				if mode == "refresh" && uses == rotationsPerFamily || mode == "exchange" && uses == 1 {
					var ok bool
					if body, ok = take(); !ok {
						return
					}
					uses = 0
				}
				sent := time.Now()
				resp, err := client.Post(target, "application/x-www-form-urlencoded", strings.NewReader(body))
				if err != nil {
					errs[i] = err
					return
				}
				answer, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				latencies[i] = append(latencies[i], time.Since(sent))
				if err != nil || resp.StatusCode != http.StatusOK {
					errs[i] = fmt.Errorf("%s: status %d: %s", target, resp.StatusCode, answer)
					return
				}
				uses++
				if mode == "replay" {
					continue
				}
				var tokens struct {
					AccessToken  string `json:"access_token"`
					RefreshToken string `json:"refresh_token"`
				}
				if json.Unmarshal(answer, &tokens) != nil || tokens.AccessToken == "" || mode == "refresh" && tokens.RefreshToken == "" {
					errs[i] = fmt.Errorf("%s: no tokens in %s", target, answer)
					return
				}
				if mode == "refresh" {
					form, _ := url.ParseQuery(body)
					form.Set("refresh_token", tokens.RefreshToken)
					body = form.Encode()
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if mode == "refresh" {
		// Saved even after an error: the families no connection took stay usable.
		left := bodies[min(taken.Load(), int64(len(bodies))):]
		if err := os.WriteFile(file, []byte(strings.Join(left, "\n")+"\n"), 0o600); err != nil {
			return err
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
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
