// Package githubmcp is a small MCP server that calls the GitHub REST API
// as the user: it forwards the bearer token of each request it receives,
// the user's GitHub token that caddy-mcp-auth hands to the backend, to
// the API. It is the backend of the GitHub API example and its test.
package githubmcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// User is the structured output of the github_user tool: the account the
// token belongs to, as GitHub's /user reports it.
type User struct {
	Login string `json:"login" jsonschema:"the user's GitHub login"`
	ID    int64  `json:"id" jsonschema:"the user's GitHub account id"`
}

// Handler returns a streamable-HTTP MCP server with the github_user tool,
// which calls apiURL (https://api.github.com, or a fake's) with the
// request's Authorization header.
func Handler(apiURL string) http.Handler {
	client := &http.Client{Timeout: 10 * time.Second}
	server := mcp.NewServer(&mcp.Implementation{Name: "github-api-demo", Version: "0.1.0"}, nil)
	mcp.AddTool(server, &mcp.Tool{
		Name:        "github_user",
		Description: "Report the GitHub account this server acts as.",
	}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, User, error) {
		var auth string
		if extra := req.GetExtra(); extra != nil {
			auth = extra.Header.Get("Authorization")
		}
		if !strings.HasPrefix(auth, "Bearer ") {
			return nil, User{}, errors.New("no GitHub token reached the server")
		}
		u, err := currentUser(ctx, client, strings.TrimRight(apiURL, "/")+"/user", auth)
		return nil, u, err
	})
	return mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server },
		&mcp.StreamableHTTPOptions{DisableLocalhostProtection: true})
}

func currentUser(ctx context.Context, client *http.Client, endpoint, auth string) (User, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return User{}, err
	}
	req.Header.Set("Authorization", auth)
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	resp, err := client.Do(req)
	if err != nil {
		return User{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return User{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return User{}, fmt.Errorf("GitHub answered %s", resp.Status)
	}
	var u User
	if err := json.Unmarshal(body, &u); err != nil {
		return User{}, fmt.Errorf("GitHub's answer: %v", err)
	}
	return u, nil
}
