package gpio

import (
	"context"
	"log/slog"
	"sync"
)

// HandlePresses calls handle for the presses from presses, one at a time,
// each on a goroutine of its own so that the next press is seen while handle
// runs. A press that comes while handle still runs is dropped and logged, not
// queued: issue 6's "a press while going live or stopping is ignored".
// Reading Presses and calling a hub action directly would instead leave the
// presses of a slow go-live in the channel's buffer, to toggle the broadcast
// again once it is live.
//
// HandlePresses returns when presses is closed or ctx ends, after the last
// handle call has returned. A nil log means slog.Default().
func HandlePresses(ctx context.Context, presses <-chan Press, handle func(context.Context, Press), log *slog.Logger) {
	if log == nil {
		log = slog.Default()
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	busy := make(chan struct{}, 1)
	for {
		select {
		case <-ctx.Done():
			return
		case p, ok := <-presses:
			if !ok {
				return
			}
			select {
			case busy <- struct{}{}:
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer func() { <-busy }()
					handle(ctx, p)
				}()
			default:
				log.Info("button press ignored: the previous press is still being handled", "kind", p.Kind.String())
			}
		}
	}
}
