package fetch

import (
	"net/http"
	"testing"
	"time"
)

func TestCacheTTL(t *testing.T) {
	for _, tc := range []struct {
		header []string
		want   time.Duration
	}{
		{nil, 5 * time.Minute},
		{[]string{"max-age=3600"}, time.Hour},
		{[]string{`max-age="3600"`}, time.Hour},
		{[]string{"public", "Max-Age=7200"}, 2 * time.Hour},
		{[]string{"max-age=-5"}, 5 * time.Minute},
		{[]string{"max-age=abc"}, 5 * time.Minute},
		{[]string{"max-age=99999999999999999999"}, 5 * time.Minute},
		{[]string{"max-age=9999999999"}, 24 * time.Hour},
		{[]string{"max-age=10"}, 5 * time.Minute},
		{[]string{"private, max-age=600"}, 10 * time.Minute},
		{[]string{"max-age=600", "no-store"}, 0},
		{[]string{"No-Store"}, 0},
	} {
		h := http.Header{"Cache-Control": tc.header}
		if got := CacheTTL(h, 5*time.Minute, 24*time.Hour); got != tc.want {
			t.Errorf("CacheTTL(%q) = %v, want %v", tc.header, got, tc.want)
		}
	}
}
