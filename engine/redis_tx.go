package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/redis/go-redis/v9"
)

// Update runs fn as WATCH/MULTI/EXEC over keys (which must share a hash
// tag). A concurrent change to a watched key aborts EXEC and fn runs again
// after a short randomized backoff; after maxTxAttempts it gives up with
// ErrTxConflict.
func (r *Redis) Update(ctx context.Context, keys []string, fn func(tx Tx) error) error {
	if err := r.begin(ctx); err != nil {
		return err
	}
	keys = dedupe(keys)
	if len(keys) == 0 {
		return fmt.Errorf("engine: Update needs at least one key")
	}
	full := make([]string, len(keys))
	for i, k := range keys {
		full[i] = r.k(k)
	}
	if err := checkSameSlot(full...); err != nil {
		return err
	}
	for attempt := 0; attempt < maxTxAttempts; attempt++ {
		var fnErr error
		err := r.c.Watch(ctx, func(rtx *redis.Tx) error {
			buf := newTxBuffer(keys, func(k string) ([]byte, error) {
				v, err := rtx.Get(ctx, r.k(k)).Bytes()
				if err != nil {
					return nil, r.wrap(err)
				}
				return v, nil
			})
			if err := fn(buf); err != nil {
				fnErr = err
				return err
			}
			if buf.err != nil {
				fnErr = buf.err
				return buf.err
			}
			if len(buf.writes) == 0 {
				return nil
			}
			_, err := rtx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				for _, k := range buf.order {
					w := buf.writes[k]
					if w.del {
						p.Del(ctx, r.k(k))
					} else {
						p.Set(ctx, r.k(k), w.val, ttlArg(w.ttl))
					}
				}
				return nil
			})
			return err
		}, full...)
		switch {
		case fnErr != nil:
			return fnErr
		case err == nil:
			return nil
		case !errors.Is(err, redis.TxFailedErr):
			return r.wrap(err)
		}
		// Lost the race: back off a little (growing, jittered) so competing
		// writers do not retry in lockstep.
		backoff := time.Duration(rand.Int64N(int64(time.Millisecond) << min(attempt, 5)))
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return r.wrap(ctx.Err())
		}
	}
	return ErrTxConflict
}
