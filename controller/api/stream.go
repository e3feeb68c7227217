package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

// GET /v1/events?follow=true streams the timeline instead of listing it:
// newline-delimited JSON (application/x-ndjson), the events a plain GET
// would list first, then each new one as it is written, until the client
// goes away. The server watches etcd for them (Service.FollowEvents), so a
// follower costs nothing while nothing happens. An error before the first
// event is an ordinary error answer; after it, the stream's last line is
// {"error": "..."}.

// streamEvents answers a follow request. The answer starts with the first
// event, or once the past is listed: a follower of an empty timeline gets
// its headers at once, and knows the stream is open.
func streamEvents(w http.ResponseWriter, req *http.Request, svc Service, f EventFilter) {
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	started := false
	head := func() {
		if !started {
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.WriteHeader(http.StatusOK)
			started = true
		}
	}
	listed := func() error {
		head()
		return rc.Flush()
	}
	err := svc.FollowEvents(req.Context(), f, listed, func(e Event) error {
		head()
		if err := enc.Encode(e); err != nil {
			return err
		}
		return rc.Flush()
	})
	switch {
	case req.Context().Err() != nil:
	case !started && err != nil:
		writeError(w, err)
	case err != nil:
		_ = enc.Encode(ErrorBody{Error: err.Error()})
	}
}

// FollowEvents calls fn with the events Events would return, then with
// each new one as it is written, until ctx ends (nil), fn returns an error
// (that error) or the stream fails.
func (c *Client) FollowEvents(ctx context.Context, f EventFilter, fn func(Event) error) error {
	q := eventQuery(f)
	q.Set("follow", "true")
	// The stream lasts as long as ctx: no overall timeout.
	hc := *c.HTTP
	hc.Timeout = 0
	resp, err := c.send(ctx, &hc, http.MethodGet, "/v1/events?"+q.Encode(), nil)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return nil // the caller stopped following before any answer
		}
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	dec := json.NewDecoder(resp.Body)
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("the relocvol API at %s ended the event stream", c.where())
			}
			return fmt.Errorf("read the event stream of %s: %w", c.where(), err)
		}
		if bytes.HasPrefix(bytes.TrimSpace(raw), []byte("[")) {
			return fmt.Errorf("the relocvol API at %s lists events but does not stream them: its plugin is older than this CLI; upgrade it", c.where())
		}
		var line struct {
			Event
			Failure string `json:"error"`
		}
		if err := json.Unmarshal(raw, &line); err != nil {
			return fmt.Errorf("decode an event from %s: %w", c.where(), err)
		}
		if line.Phase == "" && line.Failure != "" {
			return fmt.Errorf("the event stream of %s failed: %s", c.where(), line.Failure)
		}
		line.Event.Error = line.Failure
		if err := fn(line.Event); err != nil {
			return err
		}
	}
}

// eventQuery is f as GET /v1/events's query.
func eventQuery(f EventFilter) url.Values {
	q := url.Values{}
	if f.App != "" {
		q.Set("app", f.App)
	}
	if f.Relocation != "" {
		q.Set("relocation", f.Relocation)
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	return q
}
