// pace: a fixed-rate HTTP/1.1 load generator for latency measurements, wrk2-style.
//
// Requests are scheduled at fixed intervals from the start (rate R: request k is due at start + k/R). Latency is
// measured from the time a request was DUE, not from when it was sent, so a stalled server is charged for the
// requests it delayed (coordinated-omission correction). Each of C keep-alive connections takes the next due
// request when it is free; when all are busy, requests queue and their wait counts as latency.
//
// Output: one JSON object on stdout (rate asked and achieved, count, errors, percentiles in microseconds).
//
//	pace -url http://127.0.0.1:8080/small -host bench.example.com -rate 5000 -duration 10s -connections 32
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type result struct {
	Rate         float64            `json:"rate"`
	AchievedRate float64            `json:"achievedRate"`
	DurationS    float64            `json:"durationS"`
	Requests     int                `json:"requests"`
	Errors       int64              `json:"errors"`
	Non2xx       int64              `json:"non2xx"`
	Unsent       int64              `json:"unsent"`
	LatencyUs    map[string]float64 `json:"latencyUs"`
}

func main() {
	rawURL := flag.String("url", "", "target URL (http only)")
	host := flag.String("host", "", "Host header (default: from the URL)")
	rate := flag.Float64("rate", 1000, "requests per second")
	duration := flag.Duration("duration", 10*time.Second, "measured duration")
	warmup := flag.Duration("warmup", time.Second, "paced warm-up before measuring (not recorded)")
	conns := flag.Int("connections", 32, "keep-alive connections")
	flag.Parse()
	u, err := url.Parse(*rawURL)
	if err != nil || u.Scheme != "http" {
		fmt.Fprintln(os.Stderr, "pace: -url must be an http:// URL")
		os.Exit(2)
	}
	h := *host
	if h == "" {
		h = u.Host
	}
	path := u.RequestURI()
	req := []byte("GET " + path + " HTTP/1.1\r\nHost: " + h + "\r\nUser-Agent: edgegate-pace\r\nAccept: */*\r\n\r\n")

	interval := time.Duration(float64(time.Second) / *rate)
	total := int64((*warmup + *duration).Seconds() * *rate)
	warm := int64(warmup.Seconds() * *rate)
	latencies := make([]int64, total) // µs; -1 = not recorded
	var next, errors, non2xx int64 = -1, 0, 0
	start := time.Now().Add(50 * time.Millisecond)
	deadline := start.Add(*warmup + *duration + 5*time.Second)

	var wg sync.WaitGroup
	for c := 0; c < *conns; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var conn net.Conn
			var br *bufio.Reader
			for {
				k := atomic.AddInt64(&next, 1)
				if k >= total {
					break
				}
				due := start.Add(time.Duration(k) * interval)
				if d := time.Until(due); d > 0 {
					time.Sleep(d)
				}
				if time.Now().After(deadline) {
					latencies[k] = -1
					continue
				}
				if conn == nil {
					conn, err = net.Dial("tcp", u.Host)
					if err != nil {
						atomic.AddInt64(&errors, 1)
						latencies[k] = -1
						conn = nil
						continue
					}
					br = bufio.NewReaderSize(conn, 64*1024)
				}
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				status, keep, err := roundTrip(conn, br, req)
				latencies[k] = time.Since(due).Microseconds()
				if err != nil {
					atomic.AddInt64(&errors, 1)
					latencies[k] = -1
					conn.Close()
					conn = nil
					continue
				}
				if status < 200 || status > 399 {
					atomic.AddInt64(&non2xx, 1)
				}
				if !keep {
					conn.Close()
					conn = nil
				}
			}
			if conn != nil {
				conn.Close()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start.Add(*warmup))

	recorded := make([]int64, 0, total-warm)
	var unsent int64
	for _, l := range latencies[warm:] {
		if l < 0 {
			unsent++
			continue
		}
		recorded = append(recorded, l)
	}
	sort.Slice(recorded, func(i, j int) bool { return recorded[i] < recorded[j] })
	pct := func(p float64) float64 {
		if len(recorded) == 0 {
			return 0
		}
		i := int(p/100*float64(len(recorded))+0.5) - 1
		if i < 0 {
			i = 0
		}
		if i >= len(recorded) {
			i = len(recorded) - 1
		}
		return float64(recorded[i])
	}
	res := result{
		Rate:         *rate,
		AchievedRate: float64(len(recorded)) / elapsed.Seconds(),
		DurationS:    elapsed.Seconds(),
		Requests:     len(recorded),
		Errors:       errors,
		Non2xx:       non2xx,
		Unsent:       unsent - errors,
		LatencyUs: map[string]float64{
			"p50": pct(50), "p90": pct(90), "p99": pct(99), "p999": pct(99.9), "max": pct(100),
		},
	}
	if res.Unsent < 0 {
		res.Unsent = 0
	}
	json.NewEncoder(os.Stdout).Encode(res)
}

// roundTrip writes one request and reads one response (Content-Length or chunked body).
func roundTrip(conn net.Conn, br *bufio.Reader, req []byte) (int, bool, error) {
	if _, err := conn.Write(req); err != nil {
		return 0, false, err
	}
	line, err := br.ReadString('\n')
	if err != nil {
		return 0, false, err
	}
	parts := strings.SplitN(line, " ", 3)
	if len(parts) < 2 {
		return 0, false, fmt.Errorf("bad status line %q", line)
	}
	status, _ := strconv.Atoi(parts[1])
	length := int64(-1)
	chunked, keep := false, true
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			return 0, false, err
		}
		l = strings.TrimRight(l, "\r\n")
		if l == "" {
			break
		}
		colon := strings.IndexByte(l, ':')
		if colon < 0 {
			continue
		}
		name := strings.ToLower(l[:colon])
		value := strings.TrimSpace(l[colon+1:])
		switch name {
		case "content-length":
			length, _ = strconv.ParseInt(value, 10, 64)
		case "transfer-encoding":
			chunked = strings.Contains(strings.ToLower(value), "chunked")
		case "connection":
			keep = !strings.EqualFold(value, "close")
		}
	}
	switch {
	case chunked:
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return 0, false, err
			}
			size, err := strconv.ParseInt(strings.TrimSpace(strings.SplitN(l, ";", 2)[0]), 16, 64)
			if err != nil {
				return 0, false, err
			}
			if _, err := io.CopyN(io.Discard, br, size+2); err != nil {
				return 0, false, err
			}
			if size == 0 {
				// Trailers are not expected from these servers; the final CRLF was consumed above.
				return status, keep, nil
			}
		}
	case length >= 0:
		_, err := io.CopyN(io.Discard, br, length)
		return status, keep, err
	default:
		return status, false, fmt.Errorf("response without length")
	}
}
