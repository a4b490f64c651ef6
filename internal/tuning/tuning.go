// Package tuning holds the settings an operator may change while the service
// runs (PUT /performance/config). A change is all or nothing: every value is
// parsed and range-checked before any is applied, so a request with one bad
// value changes nothing.
package tuning

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Setting is one runtime-tunable value.
type Setting struct {
	// Key names the setting in PUT bodies, e.g. "cache.default_ttl".
	Key string
	// Type says what a value looks like: "duration", "bytes", "integer", "number" or "enum".
	Type string
	// Description says what the setting does and its bounds.
	Description string
	// Get returns the value in force, in the form PUT accepts.
	Get func() any
	// prepare parses and checks raw, returning the change to apply and the
	// value it sets; it must not change anything itself.
	prepare func(raw json.RawMessage) (apply func(), value any, err error)
}

// Change is one applied change, as logged in the audit trail.
type Change struct {
	Key string    `json:"key"`
	Old any       `json:"old"`
	New any       `json:"new"`
	By  string    `json:"by"`
	At  time.Time `json:"at"`
	// Revision is the journal's number for the change (0 without a journal).
	Revision int64 `json:"revision,omitempty"`
}

// Entry is a setting as GET /performance/config shows it.
type Entry struct {
	Key         string     `json:"key"`
	Type        string     `json:"type"`
	Value       any        `json:"value"`
	Description string     `json:"description"`
	ChangedBy   string     `json:"changed_by,omitempty"`
	ChangedAt   *time.Time `json:"changed_at,omitempty"`
	// AppliedFrom names the replica the change was made on when it reached
	// this one through the journal rather than through its own PUT.
	AppliedFrom string `json:"applied_from,omitempty"`
}

// FieldError is one rejected value.
type FieldError struct {
	Key    string
	Reason string
}

// ValidationError lists every rejected value of a request; nothing was applied.
type ValidationError struct{ Fields []FieldError }

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Key + ": " + f.Reason
	}
	return "tuning: " + strings.Join(parts, "; ")
}

// Registry is the set of tunable settings.
type Registry struct {
	mu       sync.Mutex
	settings map[string]*Setting
	last     map[string]Change
	from     map[string]string // key → replica a synced value came from
	rev      map[string]int64  // key → journal revision of the value in force
	journal  Journal
	log      *slog.Logger
	now      func() time.Time
}

// Journal keeps accepted changes beyond this process (the database, shared
// by every replica). Record runs after every value is checked and before any
// is applied: when it fails nothing is applied, so a replica never holds a
// value the others will not get. It returns one revision per change, in order.
type Journal interface {
	Record(ctx context.Context, changes []Change) ([]int64, error)
}

// Remote is a value set on some replica, read back from the journal.
type Remote struct {
	Key      string
	Value    json.RawMessage
	Revision int64
	By       string
	Replica  string
	At       time.Time
}

// New returns an empty registry that writes its audit events to log.
func New(log *slog.Logger, now func() time.Time) *Registry {
	if now == nil {
		now = time.Now
	}
	return &Registry{settings: map[string]*Setting{}, last: map[string]Change{}, from: map[string]string{},
		rev: map[string]int64{}, log: log, now: now}
}

// SetJournal makes every later Apply record its changes in j first. Call it
// before serving.
func (r *Registry) SetJournal(j Journal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.journal = j
}

// Add registers s; a duplicate key is a programming error and panics at start-up.
func (r *Registry) Add(s Setting) {
	if _, dup := r.settings[s.Key]; dup || s.prepare == nil || s.Get == nil {
		panic("tuning: bad or duplicate setting " + s.Key)
	}
	r.settings[s.Key] = &s
}

// Entries lists every setting with its value in force, sorted by key.
func (r *Registry) Entries() []Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Entry, 0, len(r.settings))
	for _, s := range r.settings {
		e := Entry{Key: s.Key, Type: s.Type, Value: s.Get(), Description: s.Description}
		if c, ok := r.last[s.Key]; ok {
			at := c.At
			e.ChangedBy, e.ChangedAt = c.By, &at
			e.AppliedFrom = r.from[s.Key]
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// Apply is ApplyContext without a deadline for the journal.
func (r *Registry) Apply(changes map[string]json.RawMessage, who string) ([]Change, error) {
	return r.ApplyContext(context.Background(), changes, who)
}

// ApplyContext checks every change, records them in the journal (if any),
// then applies them all, logs one audit event per change (who, what, old →
// new) and returns them. Any unknown key or bad value returns
// *ValidationError and applies nothing; so does a journal failure, returned
// wrapped.
func (r *Registry) ApplyContext(ctx context.Context, changes map[string]json.RawMessage, who string) ([]Change, error) {
	if len(changes) == 0 {
		return nil, &ValidationError{Fields: []FieldError{{Key: "body", Reason: "no settings given"}}}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	keys := make([]string, 0, len(changes))
	for k := range changes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	type pending struct {
		s     *Setting
		apply func()
		value any
	}
	var (
		todo []pending
		bad  []FieldError
	)
	for _, k := range keys {
		s, ok := r.settings[k]
		if !ok {
			bad = append(bad, FieldError{Key: k, Reason: "unknown setting; GET /performance/config lists the runtime settings"})
			continue
		}
		// json.Unmarshal leaves the target untouched on null, so without this
		// check null would apply a zero value (0 for logs.max_files turns
		// retention off) instead of being refused.
		if raw := bytes.TrimSpace(changes[k]); len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
			bad = append(bad, FieldError{Key: k, Reason: fmt.Sprintf("must be a %s value, not null; GET /performance/config shows the value in force", s.Type)})
			continue
		}
		apply, v, err := s.prepare(changes[k])
		if err != nil {
			bad = append(bad, FieldError{Key: k, Reason: err.Error()})
			continue
		}
		todo = append(todo, pending{s, apply, v})
	}
	if len(bad) > 0 {
		return nil, &ValidationError{Fields: bad}
	}
	now := r.now().UTC()
	out := make([]Change, 0, len(todo))
	for _, p := range todo {
		out = append(out, Change{Key: p.s.Key, Old: p.s.Get(), New: p.value, By: who, At: now})
	}
	if r.journal != nil {
		revs, err := r.journal.Record(ctx, out)
		if err != nil {
			return nil, fmt.Errorf("tuning: record the change: %w", err)
		}
		for i := range out {
			if i < len(revs) {
				out[i].Revision = revs[i]
			}
		}
	}
	for i, p := range todo {
		c := out[i]
		p.apply()
		r.last[p.s.Key] = c
		delete(r.from, p.s.Key)
		r.rev[p.s.Key] = max(r.rev[p.s.Key], c.Revision)
		if r.log != nil {
			r.log.Info("config changed", slog.String("audit", "config"), slog.String("key", c.Key),
				slog.Any("old", c.Old), slog.Any("new", c.New), slog.String("by", who))
		}
	}
	return out, nil
}

// Sync applies values read back from the journal: each one newer than the
// value in force (by revision) goes through the same checks as a PUT and is
// applied without being journaled again, and the entry says which replica
// it came from. It returns the changes it applied and the values it refused
// (an unknown key, a value this replica cannot take), which the caller
// counts; a refused value does not stop the others.
func (r *Registry) Sync(values []Remote) ([]Change, []FieldError) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var (
		out []Change
		bad []FieldError
	)
	for _, v := range values {
		if v.Revision <= r.rev[v.Key] {
			continue
		}
		s, ok := r.settings[v.Key]
		if !ok {
			bad = append(bad, FieldError{Key: v.Key, Reason: "unknown setting on this replica"})
			r.rev[v.Key] = v.Revision
			continue
		}
		apply, val, err := s.prepare(v.Value)
		if err != nil {
			bad = append(bad, FieldError{Key: v.Key, Reason: err.Error()})
			r.rev[v.Key] = v.Revision
			continue
		}
		c := Change{Key: v.Key, Old: s.Get(), New: val, By: v.By, At: v.At.UTC(), Revision: v.Revision}
		apply()
		r.last[v.Key], r.from[v.Key], r.rev[v.Key] = c, v.Replica, v.Revision
		out = append(out, c)
		if r.log != nil {
			r.log.Info("config applied from replica "+v.Replica, slog.String("audit", "config-sync"), slog.String("key", c.Key),
				slog.Any("old", c.Old), slog.Any("new", c.New), slog.String("by", c.By), slog.String("replica", v.Replica),
				slog.Int64("revision", v.Revision))
		}
	}
	return out, bad
}

// Duration is a setting whose value is a Go duration string ("300s") or a
// number of seconds, within [lo, hi]. check, when set, may refuse a value.
func Duration(key, desc string, lo, hi time.Duration, get func() time.Duration, set func(time.Duration), check func(time.Duration) error) Setting {
	return Setting{Key: key, Type: "duration", Description: desc,
		Get: func() any { return get().String() },
		prepare: func(raw json.RawMessage) (func(), any, error) {
			d, err := parseDuration(raw)
			if err != nil {
				return nil, nil, err
			}
			if d < lo || d > hi {
				return nil, nil, fmt.Errorf("must be from %s to %s", lo, hi)
			}
			if check != nil {
				if err := check(d); err != nil {
					return nil, nil, err
				}
			}
			return func() { set(d) }, d.String(), nil
		}}
}

// Integer is a setting whose value is a JSON integer within [lo, hi].
func Integer(key, desc string, lo, hi int64, get func() int64, set func(int64), check func(int64) error) Setting {
	return Setting{Key: key, Type: "integer", Description: desc,
		Get: func() any { return get() },
		prepare: func(raw json.RawMessage) (func(), any, error) {
			// An integer literal is read exactly; other JSON numbers (1e3,
			// 5.0) go through float64, which must stay inside int64: past
			// ±2^63 the conversion wraps, and float64(hi) may round up to 2^63.
			n, perr := strconv.ParseInt(string(bytes.TrimSpace(raw)), 10, 64)
			if perr != nil {
				var f float64
				if err := json.Unmarshal(raw, &f); err != nil || f != math.Trunc(f) {
					return nil, nil, errors.New("must be a whole number")
				}
				if math.Abs(f) >= 1<<63 {
					return nil, nil, fmt.Errorf("must be from %d to %d", lo, hi)
				}
				n = int64(f)
			}
			if n < lo || n > hi {
				return nil, nil, fmt.Errorf("must be from %d to %d", lo, hi)
			}
			if check != nil {
				if err := check(n); err != nil {
					return nil, nil, err
				}
			}
			return func() { set(n) }, n, nil
		}}
}

// Number is a setting whose value is a JSON number within [lo, hi].
func Number(key, desc string, lo, hi float64, get func() float64, set func(float64)) Setting {
	return Setting{Key: key, Type: "number", Description: desc,
		Get: func() any { return get() },
		prepare: func(raw json.RawMessage) (func(), any, error) {
			var f float64
			if err := json.Unmarshal(raw, &f); err != nil {
				return nil, nil, errors.New("must be a number")
			}
			if math.IsNaN(f) || f < lo || f > hi {
				return nil, nil, fmt.Errorf("must be from %g to %g", lo, hi)
			}
			return func() { set(f) }, f, nil
		}}
}

// Enum is a setting whose value is one of a fixed set of strings.
func Enum(key, desc string, allowed []string, get func() string, set func(string)) Setting {
	return Setting{Key: key, Type: "enum", Description: desc + " (one of " + strings.Join(allowed, ", ") + ")",
		Get: func() any { return get() },
		prepare: func(raw json.RawMessage) (func(), any, error) {
			var v string
			if err := json.Unmarshal(raw, &v); err != nil {
				return nil, nil, errors.New("must be a string")
			}
			v = strings.ToLower(v)
			for _, a := range allowed {
				if v == a {
					return func() { set(v) }, v, nil
				}
			}
			return nil, nil, fmt.Errorf("must be one of %s", strings.Join(allowed, ", "))
		}}
}

// Bytes is a setting whose value is a byte count: a JSON integer, or a string
// parsed by parse (e.g. "64KiB").
func Bytes(key, desc string, lo, hi int64, parse func(string) (int64, error), get func() int64, set func(int64)) Setting {
	return Setting{Key: key, Type: "bytes", Description: desc,
		Get: func() any { return get() },
		prepare: func(raw json.RawMessage) (func(), any, error) {
			var n int64
			var s string
			if err := json.Unmarshal(raw, &s); err == nil {
				v, err := parse(s)
				if err != nil {
					return nil, nil, errors.New("must be a byte count such as 1048576 or \"1MiB\"")
				}
				n = v
			} else {
				var f float64
				if err := json.Unmarshal(raw, &f); err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<62 {
					return nil, nil, errors.New("must be a byte count such as 1048576 or \"1MiB\"")
				}
				n = int64(f)
			}
			if n < lo || n > hi {
				return nil, nil, fmt.Errorf("must be from %d to %d bytes", lo, hi)
			}
			return func() { set(n) }, n, nil
		}}
}

func parseDuration(raw json.RawMessage) (time.Duration, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return 0, errors.New("must be a Go duration such as \"300s\" or a number of seconds")
		}
		return d, nil
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil || math.IsNaN(f) || math.Abs(f) > 1e9 {
		return 0, errors.New("must be a Go duration such as \"300s\" or a number of seconds")
	}
	return time.Duration(f * float64(time.Second)), nil
}
