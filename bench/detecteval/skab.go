package main

import (
	"context"
	"fmt"
	"io"
)

func runSKAB(ctx context.Context, w, stderr io.Writer, tool string) error {
	return fmt.Errorf("-skab %s: not implemented", tool)
}
