package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/sirupsen/logrus"
)

// Options configure the server.
type Options struct {
	// Token is required as "Authorization: Bearer TOKEN" on every request
	// but those of the status page's files (needsToken); ReadToken is
	// accepted instead on requests that only read (GET, HEAD). With
	// neither, every such request is refused: the API never answers data
	// to whoever asks.
	Token, ReadToken string
	// TokenFile and ReadTokenFile are where a host keeps them, for the
	// messages of refused requests (default: under /var/lib/relocvol).
	TokenFile, ReadTokenFile string
	Metrics                  http.Handler
	Log                      logrus.FieldLogger
}

func (o Options) tokenFile() string {
	if o.TokenFile == "" {
		return "/var/lib/relocvol/api-token"
	}
	return o.TokenFile
}

func (o Options) readTokenFile() string {
	if o.ReadTokenFile == "" {
		return "/var/lib/relocvol/api-token-read"
	}
	return o.ReadTokenFile
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
	r.Use(authorize(opt, needsToken))
	r.NotFound(func(w http.ResponseWriter, req *http.Request) {
		writeError(w, Errorf(ErrNotFound, "no such endpoint %s %s: see GET /v1/status, /v1/hosts, /v1/volumes, /v1/apps, /v1/events, /v1/local, /v1/doctor, POST /v1/apps/{name}/move, /v1/volumes/{name}/grow, /v1/vg/extend, /v1/local/volumes/{name}/forget, PUT and DELETE /v1/hosts/{name}/maintenance; the status page is GET /", req.Method, req.URL.Path))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		writeError(w, Errorf(ErrMethod, "method %s not allowed on %s", req.Method, req.URL.Path))
	})
	r.Get("/", servePage)
	r.Get(uiPrefix+"*", serveUI)
	if opt.Metrics != nil {
		r.Method(http.MethodGet, "/metrics", opt.Metrics)
	}
	r.Route("/v1", func(r chi.Router) {
		r.Get("/status", serve(svc.Status))
		r.Get("/hosts", serve(svc.Hosts))
		r.Get("/volumes", serve(svc.Volumes))
		r.Get("/apps", serve(svc.Apps))
		r.Get("/local", serve(svc.Local))
		r.Get("/doctor", serve(svc.Doctor))
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
		r.Post("/vg/extend", func(w http.ResponseWriter, req *http.Request) {
			// It writes to a device named by path on this host: only
			// root on the host may ask (the socket), not a token holder
			// over the network.
			if !onSocket(req.Context()) {
				writeError(w, Errorf(ErrUnsupported, "vg extend is served only on the host's root-only API socket: run relocvol vg extend as root on a host of the cluster"))
				return
			}
			var body VGExtendRequest
			if err := decodeBody(w, req, &body); err != nil {
				writeError(w, Errorf(ErrInvalid, `invalid vg extend request: %v; send {"devices": ["/dev/mapper/mpathb"]}`, err))
				return
			}
			if len(body.Devices) == 0 {
				writeError(w, Errorf(ErrInvalid, `invalid vg extend request: "devices" is empty; send {"devices": ["/dev/mapper/mpathb"]}`))
				return
			}
			out, err := svc.ExtendVG(req.Context(), body.Devices)
			if err != nil {
				writeError(w, err)
				return
			}
			writeJSON(w, http.StatusOK, out)
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
