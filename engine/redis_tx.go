package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/redis/go-redis/v9"
)

// Update runs fn over keys (which must share a hash tag) as an optimistic
// transaction in two Lua calls (see updateOnce). A concurrent change to a
// key aborts the commit and fn runs again after a short randomized backoff;
// after maxTxAttempts it gives up with ErrTxConflict.
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
	defer r.vers.bump(keys...)
	for attempt := 0; attempt < maxTxAttempts; attempt++ {
		done, err := r.updateOnce(ctx, keys, full, fn)
		if err != nil || done {
			return err
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

// txReadScript reads every declared key in one round trip; a key of
// another type fails the read with WRONGTYPE, as a GET would.
var txReadScript = redis.NewScript(`
local out = {}
for i = 1, #KEYS do
  out[i] = redis.call('GET', KEYS[i])
end
return out`)

// txCommitScript applies an Update's writes if none of its keys changed
// since they were read. ARGV[1..#KEYS] is what each key held: "0" absent,
// "1"..value present. Then the writes, four arguments each: key index,
// "s" or "d", value, TTL in ms (0: none).
var txCommitScript = redis.NewScript(`
local n = #KEYS
for i = 1, n do
  local cur = redis.call('GET', KEYS[i])
  local want = ARGV[i]
  if want == '0' then
    if cur then return 0 end
  elseif (not cur) or cur ~= string.sub(want, 2) then
    return 0
  end
end
local j = n + 1
while j <= #ARGV do
  local k = KEYS[tonumber(ARGV[j])]
  if ARGV[j + 1] == 'd' then
    redis.call('DEL', k)
  elseif tonumber(ARGV[j + 3]) > 0 then
    redis.call('SET', k, ARGV[j + 2], 'PX', ARGV[j + 3])
  else
    redis.call('SET', k, ARGV[j + 2])
  end
  j = j + 4
end
return 1`)

// updateOnce is one optimistic attempt of Update in two round trips: one
// script reads every declared key, fn runs against that snapshot, and a
// second script applies fn's writes only if every declared key still holds
// what was read (compare-and-set by value). WATCH/GET/MULTI/EXEC needed a
// round trip per key read plus two; on the message path, where domains
// update a few keys per message, that was most of the Redis traffic. done
// is false when a key changed meanwhile (try again).
func (r *Redis) updateOnce(ctx context.Context, keys, full []string, fn func(tx Tx) error) (done bool, err error) {
	res, err := txReadScript.Run(ctx, r.c, full).Slice()
	if err != nil {
		return false, r.wrap(err)
	}
	if len(res) != len(keys) {
		return false, fmt.Errorf("%w: Update read %d values for %d keys", ErrUnavailable, len(res), len(keys))
	}
	seen := make(map[string]any, len(keys))
	for i, k := range keys {
		seen[k] = res[i]
	}
	buf := newTxBuffer(keys, func(k string) ([]byte, error) {
		if s, ok := seen[k].(string); ok {
			return []byte(s), nil
		}
		return nil, ErrNotFound
	})
	if err := fn(buf); err != nil {
		return false, err
	}
	if buf.err != nil {
		return false, buf.err
	}
	if len(buf.writes) == 0 {
		return true, nil
	}
	index := make(map[string]int, len(keys))
	args := make([]any, 0, len(keys)+4*len(buf.order))
	for i, k := range keys {
		index[k] = i + 1
		if s, ok := res[i].(string); ok {
			args = append(args, "1"+s)
		} else {
			args = append(args, "0")
		}
	}
	for _, k := range buf.order {
		w := buf.writes[k]
		if w.del {
			args = append(args, index[k], "d", "", 0)
		} else {
			args = append(args, index[k], "s", w.val, px(w.ttl))
		}
	}
	n, err := txCommitScript.Run(ctx, r.c, full, args...).Int()
	if err != nil {
		return false, r.wrap(err)
	}
	return n == 1, nil
}
