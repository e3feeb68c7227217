package api

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestAPIBadInput: every malformed or refused request through the REST API
// gets a JSON error that names what is wrong and says what to do, with the
// right status, and changes nothing.
func TestAPIBadInput(t *testing.T) {
	svc := &fakeService{}
	h := OnSocket(Handler(svc, Options{Token: "s3cret"}))
	huge := `{"to": "` + strings.Repeat("b", 70<<10) + `"}`
	for _, tc := range []struct {
		name, method, path, token, body string
		code                            int
		want                            []string
	}{
		{"no token", "GET", "/v1/hosts", "", "", 401, []string{"missing or wrong bearer token", "Authorization: Bearer"}},
		{"wrong token", "POST", "/v1/apps/db/move", "guess", `{"to":"b"}`, 401, []string{"missing or wrong bearer token", "RELOCVOL_API_TOKEN"}},
		{"move: unknown app", "POST", "/v1/apps/web/move", "s3cret", `{"to":"b"}`, 404, []string{`no app \"web\"`}},
		{"move: dead host", "POST", "/v1/apps/db/move", "s3cret", `{"to":"dead"}`, 400, []string{`host \"dead\" is not alive`}},
		{"move: empty body", "POST", "/v1/apps/db/move", "s3cret", ``, 400, []string{"the body is empty", `send {\"to\": \"HOST\"}`}},
		{"move: not JSON", "POST", "/v1/apps/db/move", "s3cret", `to=b`, 400, []string{"invalid move request", `send {\"to\": \"HOST\"}`}},
		{"move: array", "POST", "/v1/apps/db/move", "s3cret", `["b"]`, 400, []string{"invalid move request"}},
		{"move: two objects", "POST", "/v1/apps/db/move", "s3cret", `{"to":"b"}{"to":"a"}`, 400, []string{"data after the JSON object"}},
		{"move: unknown field", "POST", "/v1/apps/db/move", "s3cret", `{"to":"b","now":true}`, 400, []string{`unknown field \"now\"`}},
		{"move: wrong type", "POST", "/v1/apps/db/move", "s3cret", `{"to":7}`, 400, []string{"invalid move request", "to"}},
		{"move: empty target", "POST", "/v1/apps/db/move", "s3cret", `{"to":""}`, 400, []string{`\"to\" is empty`}},
		{"move: oversized body", "POST", "/v1/apps/db/move", "s3cret", huge, 400, []string{"the body is larger than 64 KiB"}},
		{"move: wrong method", "GET", "/v1/apps/db/move", "s3cret", "", 405, []string{"method GET not allowed"}},
		{"maintenance: bad duration", "PUT", "/v1/hosts/b/maintenance", "s3cret", `{"for":"ten minutes"}`, 400, []string{`\"for\" is \"ten minutes\"`, "give a duration such as 10m"}},
		{"maintenance: too short", "PUT", "/v1/hosts/b/maintenance", "s3cret", `{"for":"5s"}`, 400, []string{"maintenance of 5s: use from 10s"}},
		{"maintenance: unknown host", "PUT", "/v1/hosts/zz/maintenance", "s3cret", `{"for":"10m"}`, 404, []string{`no host \"zz\"`}},
		{"maintenance: unknown field", "PUT", "/v1/hosts/b/maintenance", "s3cret", `{"for":"10m","until":"never"}`, 400, []string{`unknown field \"until\"`}},
		{"maintenance off: unknown host", "DELETE", "/v1/hosts/zz/maintenance", "s3cret", "", 404, []string{`no host \"zz\"`}},
		{"events: limit not a number", "GET", "/v1/events?limit=lots", "s3cret", "", 400, []string{`invalid limit \"lots\": use a number from 1 to 10000`}},
		{"events: limit zero", "GET", "/v1/events?limit=0", "s3cret", "", 400, []string{`invalid limit \"0\"`}},
		{"events: limit too large", "GET", "/v1/events?limit=10001", "s3cret", "", 400, []string{`invalid limit \"10001\"`}},
		{"events: bad follow", "GET", "/v1/events?follow=sometimes", "s3cret", "", 400, []string{`invalid follow \"sometimes\"`, "use true"}},
		{"forget: unknown volume", "POST", "/v1/local/volumes/nosuch/forget", "s3cret", "", 404, []string{`no mount of volume \"nosuch\"`}},
		{"vg extend: no devices", "POST", "/v1/vg/extend", "s3cret", `{"devices":[]}`, 400, []string{`\"devices\" is empty`, `send {\"devices\": [\"/dev/mapper/mpathb\"]}`}},
		{"vg extend: devices a string", "POST", "/v1/vg/extend", "s3cret", `{"devices":"/dev/sdb"}`, 400, []string{"invalid vg extend request"}},
		{"vg extend: refused device", "POST", "/v1/vg/extend", "s3cret", `{"devices":["/dev/sdq"]}`, 400, []string{`device \"/dev/sdq\" refused`}},
		{"grow: unknown volume", "POST", "/v1/volumes/nosuch/grow", "s3cret", `{"size":"2G"}`, 404, []string{`volume \"nosuch\" not found`}},
		{"grow: bad size", "POST", "/v1/volumes/db/grow", "s3cret", `{"size":"big"}`, 400, []string{`invalid size \"big\"`}},
		{"grow: empty size", "POST", "/v1/volumes/db/grow", "s3cret", `{"size":""}`, 400, []string{`\"size\" is empty`, `send {\"size\": \"20G\"}`}},
		{"grow: size a number", "POST", "/v1/volumes/db/grow", "s3cret", `{"size":20}`, 400, []string{"invalid grow request", `send {\"size\": \"20G\"}`}},
		{"grow: no body", "POST", "/v1/volumes/db/grow", "s3cret", ``, 400, []string{"the body is empty"}},
		{"grow: unknown field", "POST", "/v1/volumes/db/grow", "s3cret", `{"size":"2G","shrink":true}`, 400, []string{`unknown field \"shrink\"`}},
		{"grow: wrong method", "GET", "/v1/volumes/db/grow", "s3cret", "", 405, []string{"method GET not allowed"}},
		{"status page: POST without token", "POST", "/", "", "", 401, []string{"missing or wrong bearer token"}},
		{"status page: a path out of its files", "GET", "/ui/../v1/hosts", "", "", 401, []string{"missing or wrong bearer token"}},
		{"status page: no such file", "GET", "/ui/../../etc/passwd", "s3cret", "", 404, []string{"no file /ui/../../etc/passwd in the status page", "open GET /"}},
		{"unknown app", "GET", "/v1/apps/web", "s3cret", "", 404, []string{`no app \"web\"`, "GET /v1/apps"}},
		{"unknown endpoint", "GET", "/v1/containers", "s3cret", "", 404, []string{"no such endpoint GET /v1/containers", "see GET /v1/status"}},
		{"wrong method on a list", "POST", "/v1/hosts", "s3cret", `{}`, 405, []string{"method POST not allowed on /v1/hosts"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(t, h, tc.method, tc.path, tc.token, tc.body)
			if code != tc.code {
				t.Errorf("%s %s: %d %s, want %d", tc.method, tc.path, code, body, tc.code)
			}
			var e ErrorBody
			if json.Unmarshal([]byte(body), &e) != nil || e.Error == "" {
				t.Fatalf("%s %s: the answer is not {\"error\": ...}: %s", tc.method, tc.path, body)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("%s %s: error %s does not say %s", tc.method, tc.path, body, w)
				}
			}
			if len(svc.moved) != 0 || svc.changes != 0 || svc.grown != 0 {
				t.Fatalf("%s %s changed state: moves %v, maintenance changes %d, grows %d", tc.method, tc.path, svc.moved, svc.changes, svc.grown)
			}
		})
	}
}
