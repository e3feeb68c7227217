package store

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Latency reads one small key n times, and returns the slowest read: what
// a lease renewal may take at worst now.
func (s *Store) Latency(ctx context.Context, n int) (time.Duration, error) {
	var worst time.Duration
	for range n {
		start := time.Now()
		if _, err := s.get(ctx, s.key("cluster", ""), &Cluster{}); err != nil {
			return 0, err
		}
		worst = max(worst, time.Since(start))
	}
	return worst, nil
}

// ServerClock compares this host's clock with the etcd member at endpoint,
// from the Date header of its HTTP answers (GET /version), which has whole
// seconds: it asks every 20 ms until the second changes (about a second),
// and the tick happened between the ask before and the answer after.
// offset is this host's time minus the member's, within ± uncertainty.
func ServerClock(ctx context.Context, endpoint string, tlsCfg *tls.Config) (offset, uncertainty time.Duration, err error) {
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	defer hc.CloseIdleConnections()
	url := strings.TrimSuffix(endpoint, "/") + "/version"
	ask := func() (sent, got time.Time, date time.Time, err error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return sent, got, date, err
		}
		sent = time.Now()
		resp, err := hc.Do(req)
		got = time.Now()
		if err != nil {
			return sent, got, date, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		date, err = http.ParseTime(resp.Header.Get("Date"))
		if err != nil {
			return sent, got, date, fmt.Errorf("GET %s: no Date header to read etcd's clock from (%q)", url, resp.Header.Get("Date"))
		}
		return sent, got, date, nil
	}
	prevSent, _, prevDate, err := ask()
	if err != nil {
		return 0, 0, err
	}
	deadline := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		sent, got, date, err := ask()
		if err != nil {
			return 0, 0, err
		}
		if date.After(prevDate) {
			// The member's clock read date somewhere between prevSent and got.
			mid := prevSent.Add(got.Sub(prevSent) / 2)
			return mid.Sub(date), got.Sub(prevSent) / 2, nil
		}
		prevSent, prevDate = sent, date
	}
	return 0, 0, fmt.Errorf("GET %s: its Date header did not change in 1.5 s", url)
}
