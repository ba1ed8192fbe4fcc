package fetch

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// CacheTTL returns how long a response may be cached according to its
// Cache-Control header, clamped to [minTTL, maxTTL]: 0 for no-store (and
// no-cache, as nothing here revalidates), max-age if given, and minTTL
// otherwise. The floor stops a host from making us refetch on every
// request with max-age=0; no-store remains its explicit way out.
func CacheTTL(h http.Header, minTTL, maxTTL time.Duration) time.Duration {
	ttl := minTTL
	for _, line := range h.Values("Cache-Control") {
		for _, d := range strings.Split(line, ",") {
			name, value, _ := strings.Cut(strings.TrimSpace(d), "=")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "no-store", "no-cache":
				return 0
			case "max-age":
				secs, err := strconv.ParseInt(strings.Trim(strings.TrimSpace(value), `"`), 10, 64)
				if err == nil && secs >= 0 {
					ttl = time.Duration(min(secs, int64(maxTTL/time.Second)+1)) * time.Second
				}
			}
		}
	}
	return min(max(ttl, minTTL), maxTTL)
}
