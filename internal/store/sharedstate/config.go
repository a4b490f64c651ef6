package sharedstate

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/store"
	"github.com/smartcloudops/smartcloudops/internal/tuning"
)

// Config keeps the runtime settings (PUT /performance/config) in the
// database: it is the registry's tuning.Journal (every accepted change is
// an audit row, and the key's row in runtime_config holds the value in
// force), and its Sync applies the rows newer than what the registry holds.
type Config struct {
	st      *store.Store
	hub     *Hub
	reg     *tuning.Registry
	replica string
	now     func() time.Time
}

// NewConfig journals reg's changes in st as made on replica and registers
// the "config" topic on hub (which may be nil: no syncing, only the journal).
func NewConfig(st *store.Store, hub *Hub, reg *tuning.Registry, replica string) *Config {
	c := &Config{st: st, hub: hub, reg: reg, replica: replica, now: time.Now}
	reg.SetJournal(c)
	if hub != nil {
		hub.Handle("config", c.Sync)
	}
	return c
}

// Record implements tuning.Journal: one transaction writes an audit row per
// change and the value in force, whose revision is that audit row's id. On
// PostgreSQL the runtime_config trigger notifies the other replicas at commit.
func (c *Config) Record(ctx context.Context, changes []tuning.Change) ([]int64, error) {
	revs := make([]int64, len(changes))
	err := c.st.InTx(ctx, func(tx *store.Tx) error {
		for i, ch := range changes {
			oldV, err := json.Marshal(ch.Old)
			if err != nil {
				return fmt.Errorf("old value of %s: %w", ch.Key, err)
			}
			newV, err := json.Marshal(ch.New)
			if err != nil {
				return fmt.Errorf("new value of %s: %w", ch.Key, err)
			}
			at := ch.At.UTC()
			if err := tx.QueryRow(ctx, "INSERT INTO runtime_config_audit (key, old_value, new_value, changed_by, replica, changed_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
				ch.Key, string(oldV), string(newV), ch.By, c.replica, at).Scan(&revs[i]); err != nil {
				return fmt.Errorf("audit %s: %w", ch.Key, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO runtime_config (key, value, revision, changed_by, replica, changed_at) VALUES (?, ?, ?, ?, ?, ?) "+
				"ON CONFLICT (key) DO UPDATE SET value = excluded.value, revision = excluded.revision, changed_by = excluded.changed_by, replica = excluded.replica, changed_at = excluded.changed_at",
				ch.Key, string(newV), revs[i], ch.By, c.replica, at); err != nil {
				return fmt.Errorf("value of %s: %w", ch.Key, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sharedstate: record config change: %w", err)
	}
	return revs, nil
}

// Sync reads every stored value and applies, through the registry's checks
// and without journaling them again, those newer than the registry holds.
func (c *Config) Sync(ctx context.Context) error {
	rows, err := c.st.Query(ctx, "SELECT key, value, revision, changed_by, replica, changed_at FROM runtime_config")
	if err != nil {
		return fmt.Errorf("read runtime config: %w", err)
	}
	defer rows.Close()
	var vals []tuning.Remote
	for rows.Next() {
		var (
			r   tuning.Remote
			raw string
		)
		if err := rows.Scan(&r.Key, &raw, &r.Revision, &r.By, &r.Replica, &r.At); err != nil {
			return fmt.Errorf("read runtime config: %w", err)
		}
		r.Value = json.RawMessage(raw)
		vals = append(vals, r)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read runtime config: %w", err)
	}
	_, bad := c.reg.Sync(vals)
	for _, b := range bad {
		if c.hub != nil {
			c.hub.m.configRefused.Inc()
			c.hub.log.Warn("sharedstate: stored runtime setting not applied", slog.String("key", b.Key), slog.String("reason", b.Reason))
		}
	}
	return nil
}

// Audit lists the most recent accepted changes, newest first (at most limit).
func (c *Config) Audit(ctx context.Context, limit int) ([]AuditEntry, error) {
	rows, err := c.st.Query(ctx, "SELECT id, key, COALESCE(old_value, 'null'), new_value, changed_by, replica, changed_at FROM runtime_config_audit ORDER BY id DESC LIMIT ?", limit)
	if err != nil {
		return nil, fmt.Errorf("sharedstate: read config audit: %w", err)
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var (
			e        AuditEntry
			old, new string
		)
		if err := rows.Scan(&e.Revision, &e.Key, &old, &new, &e.By, &e.Replica, &e.At); err != nil {
			return nil, fmt.Errorf("sharedstate: read config audit: %w", err)
		}
		e.Old, e.New = json.RawMessage(old), json.RawMessage(new)
		e.At = e.At.UTC()
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sharedstate: read config audit: %w", err)
	}
	return out, nil
}

// AuditEntry is one accepted runtime setting change.
type AuditEntry struct {
	Revision int64           `json:"revision"`
	Key      string          `json:"key"`
	Old      json.RawMessage `json:"old"`
	New      json.RawMessage `json:"new"`
	By       string          `json:"by"`
	Replica  string          `json:"replica"`
	At       time.Time       `json:"at"`
}
