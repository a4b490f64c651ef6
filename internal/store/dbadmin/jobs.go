package dbadmin

import (
	"context"
	"fmt"

	"github.com/smartcloudops/smartcloudops/internal/store"
)

// Go runs job in the background, owned by the Admin rather than by the
// caller, and returns at once. job's context keeps ctx's values (its trace
// span, request id) but not its cancellation or deadline: a client hanging
// up must not abort a VACUUM half-way. It is cancelled instead when Close
// begins, and Close waits for job to return, so a job never runs against a
// closed store. Once Close has begun, Go refuses with an error wrapping
// store.ErrUnavailable.
func (ad *Admin) Go(ctx context.Context, job func(ctx context.Context)) error {
	ad.jobsMu.Lock()
	defer ad.jobsMu.Unlock()
	if ad.closed {
		return fmt.Errorf("store: database administration is shutting down: %w", store.ErrUnavailable)
	}
	jctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	unlink := context.AfterFunc(ad.life, cancel)
	ad.bg.Go(func() {
		defer cancel()
		defer unlink()
		job(jctx)
	})
	return nil
}
