package backend

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/steergate/steergate/fault"
)

// Route binds a public model name to a backend and the backend's own name
// for the model.
type Route struct {
	Name    string // what clients send as "model"
	Backend Backend
	Target  string // the backend's model name
	// Matched is the routable name (the route's, or an alias) that
	// Resolve found for the client's model: "x" for "x:latest".
	Matched string
}

// Router resolves client model names to routes. Configured routes and
// aliases are fixed; models discovered from backends are added by Discover.
type Router struct {
	mu     sync.RWMutex
	routes map[string]Route
	public map[string]bool // names listed by /v1/models: routes and their aliases
}

// NewRouter returns an empty router.
func NewRouter() *Router {
	return &Router{routes: map[string]Route{}, public: map[string]bool{}}
}

// Add registers a route under its name and every alias. A name already taken
// is an error, so two routes never shadow each other silently.
func (rt *Router) Add(r Route, aliases ...string) error {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for _, n := range append([]string{r.Name}, aliases...) {
		if old, ok := rt.routes[n]; ok && (old.Backend != r.Backend || old.Target != r.Target) {
			return fmt.Errorf("model name %q is routed twice", n)
		}
		rt.routes[n] = r
		rt.public[n] = true
	}
	return nil
}

// Discover asks every listing backend for its models and routes each under
// its own name, unless a configured route already uses that name.
func (rt *Router) Discover(ctx context.Context, backends ...Backend) error {
	for _, b := range backends {
		l, ok := b.(Lister)
		if !ok {
			continue
		}
		names, err := l.Models(ctx)
		if err != nil {
			return fmt.Errorf("discover models of backend %s: %w", b.Name(), err)
		}
		rt.mu.Lock()
		for _, n := range names {
			if _, taken := rt.routes[n]; !taken {
				rt.routes[n] = Route{Name: n, Backend: b, Target: n}
				rt.public[n] = true
			}
		}
		rt.mu.Unlock()
	}
	return nil
}

// Resolve finds the route for a client model name. Ollama serves "name" as
// "name:latest", so either spelling finds the other, on every route.
func (rt *Router) Resolve(model string) (Route, error) {
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	find := func(name string) (Route, bool) {
		r, ok := rt.routes[name]
		r.Matched = name
		return r, ok
	}
	if r, ok := find(model); ok {
		return r, nil
	}
	if base, ok := strings.CutSuffix(model, ":latest"); ok {
		if r, ok := find(base); ok {
			return r, nil
		}
	} else if r, ok := find(model + ":latest"); ok {
		return r, nil
	}
	return Route{}, &fault.ParamError{Param: "model", Msg: fmt.Sprintf("The model '%s' does not exist", fault.Clip(model, 64)), Err: fault.ErrNotFound}
}

// List returns every routable name (aliases included) with its route,
// sorted by name.
func (rt *Router) List() []Route {
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	out := make([]Route, 0, len(rt.public))
	for n := range rt.public {
		r := rt.routes[n]
		r.Name = n
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Ready reports whether any model is routable, asking the discovering
// backends again while none is.
func (rt *Router) Ready(ctx context.Context, discover ...Backend) error {
	if len(rt.List()) > 0 {
		return nil
	}
	if err := rt.Discover(ctx, discover...); err != nil {
		return err
	}
	if len(rt.List()) == 0 {
		return fmt.Errorf("no models routable")
	}
	return nil
}
