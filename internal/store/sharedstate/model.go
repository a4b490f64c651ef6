package sharedstate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/smartcloudops/smartcloudops/internal/store"
)

// ModelHolder is the part that holds the model in memory
// (*anomaly.Service): its version, and adopting the store's active one.
type ModelHolder interface {
	ActiveVersion() string
	AdoptActive(ctx context.Context) (string, bool, error)
}

// HandleModel registers the "model" topic: when the store's active model of
// kind differs from the one in memory, the holder adopts it (loading its
// artifact, as Activate does, without activating it again).
func HandleModel(hub *Hub, st *store.Store, kind string, m ModelHolder) {
	hub.Handle("model", func(ctx context.Context) error {
		var v string
		err := st.QueryRow(ctx, "SELECT version FROM models WHERE kind = ? AND active = ?", kind, true).Scan(&v)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read the active model: %w", err)
		}
		if v == m.ActiveVersion() {
			return nil
		}
		_, _, err = m.AdoptActive(ctx)
		return err
	})
}
