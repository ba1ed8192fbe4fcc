// Command benchab is the helper of scripts/bench-ab.sh: a trivial MCP
// backend, a login that gets a real access token from a running
// authorization server, a load generator for its token and registration
// endpoints, and an SVG plot of the latency percentiles.
//
//	benchab backend <addr>                        answer every request with 200 and a short JSON body
//	benchab login <issuer> <user> <pass>          print an access token for <issuer>/mcp
//	benchab families <issuer> <user> <pass> <file> <rotations> <conns>
//	                                              add refresh token families (one login each) to file, enough for
//	                                              conns connections to rotate refresh tokens rotations times
//	benchab codes <issuer> <user> <pass> <file> <n>  write n code exchanges (one login each) to file
//	benchab refresh <file> <token-url> <seconds> <conns>   rotate the refresh tokens of a families file
//	benchab exchange <file> <token-url> <seconds> <conns>  redeem the codes of a codes file
//	benchab replay <file> <url> <seconds> <conns>  send a file's token requests to url unchanged
//	benchab register <issuer> <n> <conns>         register n clients over conns connections
//	benchab dpop-login <issuer> <user> <pass>     print a DPoP-bound access token for <issuer>/mcp and its key
//	benchab dpop <file> <url> <seconds> <conns>   send DPoP-bound pings in a session, a fresh proof each
//	benchab ports <n>                             print n free loopback TCP ports
//	benchab svg <title>                           read "label p50 p75 p90 p99" lines (µs), write SVG
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/freeport"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch args := os.Args[2:]; os.Args[1] {
	case "backend":
		if len(args) != 1 {
			usage()
		}
		err = serveBackend(args[0])
	case "login":
		if len(args) != 3 {
			usage()
		}
		var token string
		if token, err = login(args[0], args[1], args[2]); err == nil {
			fmt.Println(token)
		}
	case "families":
		if len(args) != 6 {
			usage()
		}
		err = topUpFamilies(args[3], args[0], args[1], args[2], atLeast(args[4], 0), count(args[5]))
	case "codes":
		if len(args) != 5 {
			usage()
		}
		err = codes(args[3], args[0], args[1], args[2], count(args[4]))
	case "refresh", "exchange", "replay":
		if len(args) != 4 {
			usage()
		}
		err = tokenLoad(os.Args[1], args[0], args[1], time.Duration(count(args[2]))*time.Second, count(args[3]))
	case "register":
		if len(args) != 3 {
			usage()
		}
		err = registrations(args[0], count(args[1]), count(args[2]))
	case "dpop-login":
		if len(args) != 3 {
			usage()
		}
		err = dpopLogin(os.Stdout, args[0], args[1], args[2])
	case "dpop":
		if len(args) != 4 {
			usage()
		}
		err = dpopLoad(args[0], args[1], time.Duration(count(args[2]))*time.Second, count(args[3]))
	case "ports":
		if len(args) != 1 {
			usage()
		}
		err = freePorts(count(args[0]))
	case "svg":
		if len(args) != 1 {
			usage()
		}
		err = plot(os.Stdin, os.Stdout, args[0])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchab:", err)
		os.Exit(1)
	}
}

// count parses a positive count argument.
func count(arg string) int { return atLeast(arg, 1) }

// atLeast parses a whole-number argument no smaller than low.
func atLeast(arg string, low int) int {
	n, err := strconv.Atoi(arg)
	if err != nil || n < low {
		usage()
	}
	return n
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: benchab backend <addr> | login <issuer> <user> <password> | families <issuer> <user> <password> <file> <rotations> <conns>\n"+
		"  | codes <issuer> <user> <password> <file> <n> | refresh|exchange|replay <file> <url> <seconds> <conns> | register <issuer> <n> <conns>\n"+
		"  | dpop-login <issuer> <user> <password> | dpop <file> <url> <seconds> <conns> | ports <n> | svg <title>")
	os.Exit(2)
}

// freePorts prints n distinct free ports, outside the range outgoing
// connections take theirs from (see package freeport).
func freePorts(n int) error {
	ports, err := freeport.Pick(n)
	if err != nil {
		return err
	}
	fmt.Println(strings.Trim(fmt.Sprint(ports), "[]"))
	return nil
}

// serveBackend is the proxied MCP server: it reads the request and answers
// at once, so the figures are the proxy's.
func serveBackend(addr string) error {
	srv := &http.Server{Addr: addr, ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{}}`)
	})}
	return srv.ListenAndServe()
}
