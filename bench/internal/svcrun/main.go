package svcrun

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Main runs a command's run function with a context that SIGINT and
// SIGTERM cancel, so an interrupted command still stops what it started
// and removes its temporary files, and exits with the code run returns.
func Main(run func(ctx context.Context, args []string, stdout, stderr io.Writer) int) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// ErrVerdict is what a command's body returns when it ran to the end and
// printed its report, but the report's verdict is a failure (data lost, a
// series growing): the exit code says so and nothing more is printed.
var ErrVerdict = errors.New("the verdict is a failure")

// Run parses args with parse and runs body with the options, and returns
// the exit code: 0, 1 when body fails, 2 for flags it cannot use (0 for
// -h). Errors are printed to stderr after the command's name.
func Run[O any](ctx context.Context, name string, args []string, stderr io.Writer,
	parse func([]string, io.Writer) (O, error), body func(context.Context, O) error) int {
	o, err := parse(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 2
	}
	if err := body(ctx, o); err != nil {
		if !errors.Is(err, ErrVerdict) {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
		}
		return 1
	}
	return 0
}
