package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/sirupsen/logrus"
)

// Options configure the server.
type Options struct {
	// Token, when set, is required as "Authorization: Bearer TOKEN" on
	// every request.
	Token   string
	Metrics http.Handler
	Log     logrus.FieldLogger
}

// Handler returns the API's routes.
func Handler(svc Service, opt Options) http.Handler {
	if opt.Log == nil {
		opt.Log = logrus.StandardLogger()
	}
	r := chi.NewRouter()
	r.Use(middleware.Recoverer)
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			start := time.Now()
			next.ServeHTTP(w, req)
			opt.Log.WithFields(logrus.Fields{"method": req.Method, "path": req.URL.Path, "took": time.Since(start).String()}).Debug("api request")
		})
	})
	if opt.Token != "" {
		r.Use(bearer(opt.Token))
	}
	r.NotFound(func(w http.ResponseWriter, req *http.Request) {
		writeError(w, Errorf(ErrNotFound, "no such endpoint %s %s: see GET /v1/status, /v1/hosts, /v1/volumes, /v1/apps, /v1/events, /v1/local, POST /v1/apps/{name}/move, /v1/volumes/{name}/grow, /v1/local/volumes/{name}/forget, PUT and DELETE /v1/hosts/{name}/maintenance", req.Method, req.URL.Path))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		writeError(w, Errorf(ErrMethod, "method %s not allowed on %s", req.Method, req.URL.Path))
	})
	r.Get("/", statusPage(svc))
	if opt.Metrics != nil {
		r.Method(http.MethodGet, "/metrics", opt.Metrics)
	}
	r.Route("/v1", func(r chi.Router) {
		r.Get("/status", serve(svc.Status))
		r.Get("/hosts", serve(svc.Hosts))
		r.Get("/volumes", serve(svc.Volumes))
		r.Get("/apps", serve(svc.Apps))
		r.Get("/local", serve(svc.Local))
		r.Put("/hosts/{name}/maintenance", func(w http.ResponseWriter, req *http.Request) {
			var body MaintenanceRequest
			if err := decodeBody(w, req, &body); err != nil {
				writeError(w, Errorf(ErrInvalid, `invalid maintenance request: %v; send {"for": "10m", "reason": "..."}`, err))
				return
			}
			d, err := time.ParseDuration(body.For)
			if err != nil {
				writeError(w, Errorf(ErrInvalid, `invalid maintenance request: "for" is %q: give a duration such as 10m or 1h30m`, body.For))
				return
			}
			m, err := svc.SetMaintenance(req.Context(), chi.URLParam(req, "name"), d, body.Reason)
			if err != nil {
				writeError(w, err)
				return
			}
			writeJSON(w, http.StatusOK, m)
		})
		r.Delete("/hosts/{name}/maintenance", func(w http.ResponseWriter, req *http.Request) {
			if err := svc.EndMaintenance(req.Context(), chi.URLParam(req, "name")); err != nil {
				writeError(w, err)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		})
		r.Post("/local/volumes/{name}/forget", func(w http.ResponseWriter, req *http.Request) {
			if err := svc.ForgetMounts(req.Context(), chi.URLParam(req, "name")); err != nil {
				writeError(w, err)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		})
		r.Post("/volumes/{name}/grow", func(w http.ResponseWriter, req *http.Request) {
			var body GrowRequest
			if err := decodeBody(w, req, &body); err != nil {
				writeError(w, Errorf(ErrInvalid, `invalid grow request: %v; send {"size": "20G"}`, err))
				return
			}
			if body.Size == "" {
				writeError(w, Errorf(ErrInvalid, `invalid grow request: "size" is empty; send {"size": "20G"}`))
				return
			}
			g, err := svc.GrowVolume(req.Context(), chi.URLParam(req, "name"), body.Size)
			if err != nil {
				writeError(w, err)
				return
			}
			code := http.StatusOK
			if g.Filesystem != FSGrown {
				code = http.StatusAccepted // the filesystem follows later
			}
			writeJSON(w, code, g)
		})
		r.Get("/apps/{name}", func(w http.ResponseWriter, req *http.Request) {
			apps, err := svc.Apps(req.Context())
			if err != nil {
				writeError(w, err)
				return
			}
			name := chi.URLParam(req, "name")
			for _, a := range apps {
				if a.Name == name {
					writeJSON(w, http.StatusOK, a)
					return
				}
			}
			writeError(w, Errorf(ErrNotFound, "no app %q: relocvol knows containers labelled relocvol.relocate=true that use relocvol volumes (see GET /v1/apps)", name))
		})
		r.Get("/events", func(w http.ResponseWriter, req *http.Request) {
			q := req.URL.Query()
			f := EventFilter{App: q.Get("app"), Relocation: q.Get("relocation"), Limit: 200}
			if s := q.Get("limit"); s != "" {
				n, err := strconv.Atoi(s)
				if err != nil || n < 1 || n > 10000 {
					writeError(w, Errorf(ErrInvalid, "invalid limit %q: use a number from 1 to 10000", s))
					return
				}
				f.Limit = n
			}
			if s := q.Get("follow"); s != "" {
				follow, err := strconv.ParseBool(s)
				if err != nil {
					writeError(w, Errorf(ErrInvalid, "invalid follow %q: use true to stream the events as they are written, or false", s))
					return
				}
				if follow {
					streamEvents(w, req, svc, f)
					return
				}
			}
			ev, err := svc.Events(req.Context(), f)
			if err != nil {
				writeError(w, err)
				return
			}
			writeJSON(w, http.StatusOK, ev)
		})
		r.Post("/apps/{name}/move", func(w http.ResponseWriter, req *http.Request) {
			var body MoveRequest
			if err := decodeBody(w, req, &body); err != nil {
				writeError(w, Errorf(ErrInvalid, `invalid move request: %v; send {"to": "HOST"}`, err))
				return
			}
			if body.To == "" {
				writeError(w, Errorf(ErrInvalid, `invalid move request: "to" is empty; send {"to": "HOST"}`))
				return
			}
			rel, err := svc.Move(req.Context(), chi.URLParam(req, "name"), body.To)
			if err != nil {
				writeError(w, err)
				return
			}
			writeJSON(w, http.StatusAccepted, rel)
		})
	})
	return r
}

// maxBody bounds a request's body: every one is a small JSON object.
const maxBody = 64 << 10

// decodeBody reads the request's body as exactly one JSON object of v's
// fields: no unknown field, nothing after it, at most maxBody bytes.
func decodeBody(w http.ResponseWriter, req *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, req.Body, maxBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("data after the JSON object")
		}
	}
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return fmt.Errorf("the body is larger than %d KiB", maxBody>>10)
	case errors.Is(err, io.EOF):
		return errors.New("the body is empty")
	}
	return err
}

func serve[T any](f func(context.Context) (T, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		v, err := f(req.Context())
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	}
}

func bearer(token string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			got, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="relocvol"`)
				writeError(w, Errorf(ErrUnauthorized, "missing or wrong bearer token: send Authorization: Bearer <the host's --api-token> (relocvol CLI: --token or RELOCVOL_API_TOKEN)"))
				return
			}
			next.ServeHTTP(w, req)
		})
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	writeJSON(w, statusOf(err), ErrorBody{Error: err.Error()})
}

// Listen opens the API's address, so that a taken port fails start-up.
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("API: listen on %s: %w (set another address with --api-addr / RELOCVOL_API_ADDR, or empty for none)", addr, err)
	}
	return ln, nil
}

// Serve answers on ln until ctx ends.
func Serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	addr := ln.Addr().String()
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("API on %s: %w", addr, err)
	}
	return nil
}

var page = template.Must(template.New("status").Funcs(template.FuncMap{
	"ago": func(s float64) string { return strconv.FormatFloat(s, 'f', 1, 64) + "s" },
	"ms":  func(ms int64) string { return (time.Duration(ms) * time.Millisecond).String() },
	"ts":  func(t time.Time) string { return t.Local().Format("15:04:05.000") },
}).Parse(`<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="2"><title>relocvol: {{.Status.Host}}</title>
<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin-bottom:1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}.bad{color:#b00;font-weight:bold}.ok{color:#070}</style></head>
<body><h1>relocvol</h1>
<p>Host <b>{{.Status.Host}}</b> ({{if .Status.Alive}}<span class="ok">alive</span>{{else}}<span class="bad">no current lease</span>{{end}}), leader <b>{{.Status.Leader}}</b>, version {{.Status.Version}}.
{{.Status.HostsAlive}}/{{.Status.Hosts}} hosts alive, {{.Status.Volumes}} volumes, {{.Status.Apps}} apps, {{.Status.Relocating}} relocating.</p>
{{if .Err}}<p class="bad">{{.Err}}</p>{{end}}
<h2>Hosts</h2><table><tr><th>host</th><th>state</th><th>lease renewed</th><th>leader</th><th>apps</th><th>volumes</th></tr>
{{range .Hosts}}<tr><td>{{.Name}}</td><td>{{if .Fenced}}<span class="bad">fenced by {{.FencedBy}}</span>{{else if .Alive}}<span class="ok">alive</span>{{else}}<span class="bad">dead</span>{{end}}</td><td>{{if .Alive}}{{ago .LeaseAgeSeconds}} ago{{end}}</td><td>{{if .Leader}}yes{{end}}</td><td>{{.Apps}}</td><td>{{.Volumes}}</td></tr>{{end}}</table>
<h2>Apps</h2><table><tr><th>app</th><th>image</th><th>volumes</th><th>placed on</th><th>running on</th><th>relocation</th></tr>
{{range .Apps}}<tr><td>{{.Name}}</td><td>{{.Image}}</td><td>{{range .Volumes}}{{.}} {{end}}</td><td>{{.DesiredHost}}</td><td>{{if .ActualHost}}{{.ActualHost}}{{else}}<span class="bad">none</span>{{end}}</td><td>{{with .Relocation}}{{.Kind}} {{.From}} → {{.To}}{{end}}</td></tr>{{end}}</table>
<h2>Volumes</h2><table><tr><th>volume</th><th>size</th><th>owner</th><th>epoch</th><th>mounts</th><th>backend</th></tr>
{{range .Volumes}}<tr><td>{{.Name}}</td><td>{{.SizeHuman}}</td><td>{{.Owner}}{{if and .Owner (not .OwnerAlive)}} <span class="bad">(dead)</span>{{end}}</td><td>{{.Epoch}}</td><td>{{.Mounts}}</td><td>{{.Backend}}</td></tr>{{end}}</table>
<h2>Timeline</h2><table><tr><th>time</th><th>app</th><th>relocation</th><th>phase</th><th>host</th><th>took</th><th>since start</th><th>detail</th></tr>
{{range .Events}}<tr><td>{{ts .At}}</td><td>{{.App}}</td><td>{{.Kind}} {{.From}} → {{.To}}</td><td>{{.Phase}}</td><td>{{.Host}}</td><td>{{ms .TookMS}}</td><td>{{ms .SinceStartMS}}</td><td>{{.Detail}}{{if .Error}} <span class="bad">{{.Error}}</span>{{end}}</td></tr>{{end}}</table>
</body></html>`))

func statusPage(svc Service) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		ctx := req.Context()
		var data struct {
			Status  Status
			Hosts   []Host
			Apps    []App
			Volumes []Volume
			Events  any
			Err     error
		}
		var errs []error
		var err error
		data.Status, err = svc.Status(ctx)
		errs = append(errs, err)
		data.Hosts, err = svc.Hosts(ctx)
		errs = append(errs, err)
		data.Apps, err = svc.Apps(ctx)
		errs = append(errs, err)
		data.Volumes, err = svc.Volumes(ctx)
		errs = append(errs, err)
		ev, err := svc.Events(ctx, EventFilter{Limit: 30})
		errs = append(errs, err)
		for i, j := 0, len(ev)-1; i < j; i, j = i+1, j-1 {
			ev[i], ev[j] = ev[j], ev[i] // newest first
		}
		data.Events = ev
		data.Err = errors.Join(errs...)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := page.Execute(w, data); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	}
}
