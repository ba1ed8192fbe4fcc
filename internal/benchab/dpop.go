package main

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
)

// dpopLogin logs in once as a DPoP client: a fresh key proves itself at
// the token endpoint, so the access token is bound to it. It writes the
// token and the key (PKCS #8, base64) on two lines, for dpopLoad.
func dpopLogin(w io.Writer, issuer, user, password string) error {
	key, err := oauthtest.GenerateDPoPKey()
	if err != nil {
		return err
	}
	proof, err := key.Sign(oauthtest.ProofClaims{Method: http.MethodPost, URL: issuer + "/token"}, nil)
	if err != nil {
		return err
	}
	browser := newBrowser()
	clientID, err := register(browser, issuer, []string{"authorization_code"})
	if err != nil {
		return err
	}
	tokens, err := authorize(browser, issuer, clientID, user, password, http.Header{"Dpop": {proof}})
	if err != nil {
		return err
	}
	token, _ := tokens["access_token"].(string)
	if token == "" || tokens["token_type"] != "DPoP" {
		return fmt.Errorf("token: no DPoP access_token in %v", tokens)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key.Private)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n%s\n", token, base64.StdEncoding.EncodeToString(der))
	return err
}

// dpopLoad sends, for d over conns connections, MCP pings in a session
// with the DPoP-bound token of file (as dpopLogin writes it), each with a
// proof made for it: what a DPoP client sends. Any target gets the same
// requests (plain reverse_proxy ignores the proof) and must answer 200.
// It prints what tokenLoad prints.
func dpopLoad(file, target string, d time.Duration, conns int) error {
	lines, err := readLines(file)
	if err != nil {
		return err
	}
	if len(lines) != 2 {
		return fmt.Errorf("%s: want a token and a key", file)
	}
	token := lines[0]
	der, err := base64.StdEncoding.DecodeString(lines[1])
	if err != nil {
		return err
	}
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return err
	}
	private, ok := parsed.(*ecdsa.PrivateKey)
	if !ok {
		return fmt.Errorf("%s: not an ECDSA key", file)
	}
	key, err := oauthtest.DPoPKeyOf(private)
	if err != nil {
		return err
	}
	client := loadClient(conns)
	latencies := make([][]time.Duration, conns)
	errs := make([]error, conns)
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				proof, err := key.Sign(oauthtest.ProofClaims{Method: http.MethodPost, URL: target, AccessToken: token}, nil)
				if err != nil {
					errs[i] = err
					return
				}
				req, _ := http.NewRequest(http.MethodPost, target, strings.NewReader(benchPing))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "DPoP "+token)
				req.Header.Set("DPoP", proof)
				req.Header.Set("Mcp-Session-Id", benchSession)
				sent := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					errs[i] = err
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				latencies[i] = append(latencies[i], time.Since(sent))
				if resp.StatusCode != http.StatusOK {
					errs[i] = fmt.Errorf("%s: status %d: %s %s", target, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
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

// The request of the session rows of scripts/bench-ab.sh: a ping in a
// session.
const (
	benchSession = "4f1d2c9e-6b7a-4d3e-9a8b-0c1d2e3f4a5b"
	benchPing    = `{"jsonrpc":"2.0","id":2,"method":"ping"}`
)
