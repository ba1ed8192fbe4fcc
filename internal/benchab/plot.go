package main

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"strconv"
	"strings"
)

// plot draws one polyline per configuration over the percentiles.
func plot(in io.Reader, out io.Writer, title string) error {
	type series struct {
		label string
		us    []float64
	}
	var all []series
	maxUS := 1.0
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 5 {
			continue
		}
		s := series{label: f[0]}
		for _, v := range f[1:] {
			x, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return fmt.Errorf("latency %q: %w", v, err)
			}
			s.us = append(s.us, x)
			maxUS = max(maxUS, x)
		}
		all = append(all, s)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	const w, h, left, bottom, top, right = 640, 360, 60, 40, 30, 190
	percentiles := []string{"p50", "p75", "p90", "p99"}
	x := func(i int) float64 { return left + float64(i)*float64(w-left-right)/float64(len(percentiles)-1) }
	y := func(us float64) float64 { return float64(h-bottom) - us/maxUS*float64(h-bottom-top) }
	colors := []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"}

	fmt.Fprintf(out, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", w, h)
	fmt.Fprintf(out, `<rect width="100%%" height="100%%" fill="white"/><text x="%d" y="18" font-size="14">%s</text>`+"\n", left, html.EscapeString(title))
	for i := 0; i <= 4; i++ {
		us := maxUS * float64(i) / 4
		fmt.Fprintf(out, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%.0f µs</text>`+"\n",
			left, w-right, y(us), y(us), left-6, y(us)+4, us)
	}
	for i, p := range percentiles {
		fmt.Fprintf(out, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x(i), h-bottom+18, p)
	}
	for n, s := range all {
		color := colors[n%len(colors)]
		var pts []string
		for i, us := range s.us {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(i), y(us)))
		}
		fmt.Fprintf(out, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", color, strings.Join(pts, " "))
		fmt.Fprintf(out, `<text x="%d" y="%d" fill="%s">%s</text>`+"\n", w-right+10, top+16*(n+1), color, html.EscapeString(s.label))
	}
	fmt.Fprintln(out, "</svg>")
	return nil
}
