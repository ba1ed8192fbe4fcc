// Command demo-backend serves the caddy-mcp-auth demo MCP server over
// streamable HTTP at /mcp. Its whoami tool reports the identity headers the
// proxy forwards, so it is handy for trying out a caddy-mcp-auth setup.
package main

import (
	"context"
	"errors"
	"flag"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/demomcp"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9000", "address to listen on")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if err := run(ctx, *listen); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, addr string) error {
	mux := http.NewServeMux()
	mux.Handle("/mcp", demomcp.Handler())

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	// Request contexts derive from reqCtx. Cancelling it on shutdown ends the
	// long-lived SSE streams that streamable HTTP clients keep open, which
	// Shutdown would otherwise wait for until its deadline.
	reqCtx, cancelRequests := context.WithCancel(context.Background())
	defer cancelRequests()
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return reqCtx },
	}
	srv.RegisterOnShutdown(cancelRequests)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Printf("demo MCP backend listening on http://%s/mcp", ln.Addr())

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Print("shutting down")

	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Printf("graceful shutdown: %v; closing remaining connections", err)
		_ = srv.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
