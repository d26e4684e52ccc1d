package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is the shared engine: state lives in Redis (standalone, Sentinel or
// Cluster via redis.UniversalClient) so many gateway instances can serve the
// same traffic. Every multi-key operation is a Lua script or WATCH/MULTI over
// keys that share a hash tag, so it runs unchanged on Redis Cluster.
//
// Layout (prefix "kefu:"): key k is "kefu:k"; queue q is a hash
// "<base>:j" (fields "d:<id>" data, "a:<id>" attempts) plus a zset
// "<base>:z" (member id, score due unix ms), where base is "kefu:q" if that
// already contains a hash tag and "{kefu:q}" otherwise; log l is the
// stream "kefu:l" (field "d"); channel c is "kefu:c".
type Redis struct {
	c         redis.UniversalClient
	prefix    string
	closed    atomic.Bool
	done      chan struct{}
	closeOnce sync.Once
	// vers counts this instance's writes per keyspace stripe so that a
	// prefetched read is never served after a write that followed it.
	vers *writeVersions
	// batch shares pipelines between concurrent simple commands (Get,
	// Set, SetNX, Prefetch): see batcher.
	batch *batcher
}

var _ Engine = (*Redis)(nil)

// NewRedis returns an engine using client, prefixing every key and channel
// with prefix (e.g. "kefu:"). The engine takes ownership of client: Close
// closes it.
func NewRedis(client redis.UniversalClient, prefix string) *Redis {
	return &Redis{c: client, prefix: prefix, done: make(chan struct{}), vers: newWriteVersions(), batch: newBatcher(client)}
}

// Name returns "redis".
func (r *Redis) Name() string { return "redis" }

// Ping checks that Redis answers.
func (r *Redis) Ping(ctx context.Context) error {
	if err := r.begin(ctx); err != nil {
		return err
	}
	return r.wrap(r.c.Ping(ctx).Err())
}

// Close ends subscriptions and closes the client. Later calls return
// ErrClosed.
func (r *Redis) Close() error {
	var err error
	r.closeOnce.Do(func() {
		r.closed.Store(true)
		close(r.done)
		r.batch.close()
		err = r.c.Close()
	})
	return err
}

func (r *Redis) begin(ctx context.Context) error {
	if r.closed.Load() {
		return ErrClosed
	}
	return ctx.Err()
}

func (r *Redis) k(key string) string { return r.prefix + key }

// wrap maps go-redis errors to engine errors: redis.Nil → ErrNotFound, type
// and range replies → ErrWrongType (caller bugs, not outages), everything
// else (network, timeouts, CLUSTERDOWN, LOADING, …) → ErrUnavailable so the
// caller can answer "retry later".
func (r *Redis) wrap(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, redis.Nil):
		return ErrNotFound
	case errors.Is(err, redis.ErrClosed) && r.closed.Load():
		return ErrClosed
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		msg := err.Error()
		if strings.Contains(msg, "WRONGTYPE") || strings.Contains(msg, "not an integer") ||
			strings.Contains(msg, "not a valid float") || strings.Contains(msg, "overflow") {
			return fmt.Errorf("%w: %v", ErrWrongType, err)
		}
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// px converts a TTL to whole milliseconds for PX (0 = none; sub-millisecond
// TTLs round up rather than meaning "no expiry").
func px(ttl time.Duration) int64 {
	if ttl <= 0 {
		return 0
	}
	if ms := ttl.Milliseconds(); ms > 0 {
		return ms
	}
	return 1
}

func ttlArg(ttl time.Duration) time.Duration {
	return time.Duration(px(ttl)) * time.Millisecond
}

// Get returns key's value or ErrNotFound; a value prefetched for ctx (see
// Prefetched) is served without a round trip.
func (r *Redis) Get(ctx context.Context, key string) ([]byte, error) {
	if err := r.begin(ctx); err != nil {
		return nil, err
	}
	if v, err, ok := prefetchedFor(ctx, r.vers).Take(key); ok {
		return v, err
	}
	var cmd *redis.StringCmd
	if err := r.batch.do(ctx, func(p redis.Pipeliner) { cmd = p.Get(ctx, r.k(key)) }); err != nil {
		return nil, err
	}
	v, err := cmd.Bytes()
	if err != nil {
		return nil, r.wrap(err)
	}
	return v, nil
}

// Set stores val with ttl (SET replaces any type and clears an old TTL).
func (r *Redis) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	if err := r.begin(ctx); err != nil {
		return err
	}
	defer r.vers.bump(key)
	var cmd *redis.StatusCmd
	if err := r.batch.do(ctx, func(p redis.Pipeliner) { cmd = p.Set(ctx, r.k(key), val, ttlArg(ttl)) }); err != nil {
		return err
	}
	return r.wrap(cmd.Err())
}

// SetNX sets key only if absent (SET NX PX).
func (r *Redis) SetNX(ctx context.Context, key string, val []byte, ttl time.Duration) (bool, error) {
	if err := r.begin(ctx); err != nil {
		return false, err
	}
	defer r.vers.bump(key)
	var cmd *redis.BoolCmd
	if err := r.batch.do(ctx, func(p redis.Pipeliner) { cmd = p.SetNX(ctx, r.k(key), val, ttlArg(ttl)) }); err != nil {
		return false, err
	}
	ok, err := cmd.Result()
	return ok, r.wrap(err)
}

// Del deletes keys one DEL per key in a pipeline, so keys in different
// cluster slots are fine.
func (r *Redis) Del(ctx context.Context, keys ...string) error {
	if err := r.begin(ctx); err != nil || len(keys) == 0 {
		return err
	}
	defer r.vers.bump(keys...)
	if len(keys) == 1 {
		return r.wrap(r.c.Del(ctx, r.k(keys[0])).Err())
	}
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.Del(ctx, r.k(k))
		}
		return nil
	})
	return r.wrap(err)
}

var appendScript = redis.NewScript(`
local n = redis.call('APPEND', KEYS[1], ARGV[1])
if tonumber(ARGV[2]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
else
  redis.call('PERSIST', KEYS[1])
end
return n
`)

// StrAppend appends with APPEND and sets the TTL in the same script.
func (r *Redis) StrAppend(ctx context.Context, key string, data []byte, ttl time.Duration) (int64, error) {
	if err := r.begin(ctx); err != nil {
		return 0, err
	}
	defer r.vers.bump(key)
	n, err := appendScript.Run(ctx, r.c, []string{r.k(key)}, data, px(ttl)).Int64()
	return n, r.wrap(err)
}

// SetMany sends every write in one pipeline (not a transaction: the keys
// may live in different slots).
func (r *Redis) SetMany(ctx context.Context, writes ...Write) error {
	if err := r.begin(ctx); err != nil || len(writes) == 0 {
		return err
	}
	defer func() {
		for _, w := range writes {
			r.vers.bump(w.Key)
		}
	}()
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, w := range writes {
			if w.Del {
				p.Del(ctx, r.k(w.Key))
			} else {
				p.Set(ctx, r.k(w.Key), w.Val, ttlArg(w.TTL))
			}
		}
		return nil
	})
	return r.wrap(err)
}

var casScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if ARGV[1] == '0' then
  if cur then return 0 end
elseif cur ~= ARGV[2] then
  return 0
end
if tonumber(ARGV[4]) > 0 then
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
else
  redis.call('SET', KEYS[1], ARGV[3])
end
return 1`)

// CompareAndSwap replaces key's value if it equals old (old == nil: key must
// be absent), atomically via Lua.
func (r *Redis) CompareAndSwap(ctx context.Context, key string, old, val []byte, ttl time.Duration) (bool, error) {
	if err := r.begin(ctx); err != nil {
		return false, err
	}
	defer r.vers.bump(key)
	mode := "1"
	if old == nil {
		mode = "0"
	}
	n, err := casScript.Run(ctx, r.c, []string{r.k(key)}, mode, old, val, px(ttl)).Int()
	return n == 1 && err == nil, r.wrap(err)
}

var cadScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur and cur == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0`)

// CompareAndDelete deletes key if its value equals old (nil matches "").
func (r *Redis) CompareAndDelete(ctx context.Context, key string, old []byte) (bool, error) {
	if err := r.begin(ctx); err != nil {
		return false, err
	}
	defer r.vers.bump(key)
	n, err := cadScript.Run(ctx, r.c, []string{r.k(key)}, old).Int()
	return n == 1 && err == nil, r.wrap(err)
}

var incrScript = redis.NewScript(`
local existed = redis.call('EXISTS', KEYS[1])
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if existed == 0 and tonumber(ARGV[2]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return v`)

// IncrBy adds delta (INCRBY), setting ttl only if this call created the key.
func (r *Redis) IncrBy(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error) {
	if err := r.begin(ctx); err != nil {
		return 0, err
	}
	defer r.vers.bump(key)
	if ttl <= 0 {
		n, err := r.c.IncrBy(ctx, r.k(key), delta).Result()
		return n, r.wrap(err)
	}
	n, err := incrScript.Run(ctx, r.c, []string{r.k(key)}, delta, px(ttl)).Int64()
	return n, r.wrap(err)
}

// TTL returns the remaining time to live (PTTL): 0 when none, ErrNotFound
// when absent.
func (r *Redis) TTL(ctx context.Context, key string) (time.Duration, error) {
	if err := r.begin(ctx); err != nil {
		return 0, err
	}
	ms, err := r.c.Do(ctx, "PTTL", r.k(key)).Int64()
	switch {
	case err != nil:
		return 0, r.wrap(err)
	case ms == -2:
		return 0, ErrNotFound
	case ms < 0:
		return 0, nil
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// HSet sets fields of the hash at key.
func (r *Redis) HSet(ctx context.Context, key string, fields map[string][]byte) error {
	if err := r.begin(ctx); err != nil || len(fields) == 0 {
		return err
	}
	defer r.vers.bump(key)
	args := make([]any, 0, 2*len(fields))
	for f, v := range fields {
		args = append(args, f, v)
	}
	return r.wrap(r.c.HSet(ctx, r.k(key), args...).Err())
}

// HGet returns one field; ErrNotFound if the key or field is absent.
func (r *Redis) HGet(ctx context.Context, key, field string) ([]byte, error) {
	if err := r.begin(ctx); err != nil {
		return nil, err
	}
	v, err := r.c.HGet(ctx, r.k(key), field).Bytes()
	if err != nil {
		return nil, r.wrap(err)
	}
	return v, nil
}

// HGetAll returns all fields; ErrNotFound when the hash is absent.
func (r *Redis) HGetAll(ctx context.Context, key string) (map[string][]byte, error) {
	if err := r.begin(ctx); err != nil {
		return nil, err
	}
	m, err := r.c.HGetAll(ctx, r.k(key)).Result()
	if err != nil {
		return nil, r.wrap(err)
	}
	if len(m) == 0 {
		return nil, ErrNotFound
	}
	out := make(map[string][]byte, len(m))
	for f, v := range m {
		out[f] = []byte(v)
	}
	return out, nil
}

// HDel removes fields.
func (r *Redis) HDel(ctx context.Context, key string, fields ...string) error {
	if err := r.begin(ctx); err != nil || len(fields) == 0 {
		return err
	}
	defer r.vers.bump(key)
	return r.wrap(r.c.HDel(ctx, r.k(key), fields...).Err())
}

// HIncrBy adds delta to the integer in field.
func (r *Redis) HIncrBy(ctx context.Context, key, field string, delta int64) (int64, error) {
	if err := r.begin(ctx); err != nil {
		return 0, err
	}
	defer r.vers.bump(key)
	n, err := r.c.HIncrBy(ctx, r.k(key), field, delta).Result()
	return n, r.wrap(err)
}

// ZAdd adds members or updates their scores.
func (r *Redis) ZAdd(ctx context.Context, key string, items ...ZItem) error {
	if err := r.begin(ctx); err != nil {
		return err
	}
	defer r.vers.bump(key)
	zs := make([]redis.Z, len(items))
	for i, it := range items {
		if math.IsNaN(it.Score) {
			return errNaNScore
		}
		zs[i] = redis.Z{Score: it.Score, Member: it.Member}
	}
	if len(zs) == 0 {
		return nil
	}
	return r.wrap(r.c.ZAdd(ctx, r.k(key), zs...).Err())
}

// ZRem removes members and returns how many were present.
func (r *Redis) ZRem(ctx context.Context, key string, members ...string) (int, error) {
	if err := r.begin(ctx); err != nil || len(members) == 0 {
		return 0, err
	}
	defer r.vers.bump(key)
	args := make([]any, len(members))
	for i, m := range members {
		args[i] = m
	}
	n, err := r.c.ZRem(ctx, r.k(key), args...).Result()
	return int(n), r.wrap(err)
}

func scoreArg(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "+inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// ZRangeByScore returns members with min <= score <= max, lowest first, at
// most limit (0 = all).
func (r *Redis) ZRangeByScore(ctx context.Context, key string, min, max float64, limit int) ([]ZItem, error) {
	if err := r.begin(ctx); err != nil {
		return nil, err
	}
	opt := &redis.ZRangeBy{Min: scoreArg(min), Max: scoreArg(max)}
	if limit > 0 {
		opt.Count = int64(limit)
	}
	zs, err := r.c.ZRangeByScoreWithScores(ctx, r.k(key), opt).Result()
	if err != nil {
		return nil, r.wrap(err)
	}
	out := make([]ZItem, len(zs))
	for i, z := range zs {
		out[i] = ZItem{Member: fmt.Sprint(z.Member), Score: z.Score}
	}
	return out, nil
}

// ZScore returns member's score or ErrNotFound.
func (r *Redis) ZScore(ctx context.Context, key, member string) (float64, error) {
	if err := r.begin(ctx); err != nil {
		return 0, err
	}
	s, err := r.c.ZScore(ctx, r.k(key), member).Result()
	return s, r.wrap(err)
}

// ZCard counts members.
func (r *Redis) ZCard(ctx context.Context, key string) (int64, error) {
	if err := r.begin(ctx); err != nil {
		return 0, err
	}
	n, err := r.c.ZCard(ctx, r.k(key)).Result()
	return n, r.wrap(err)
}

// Publish sends msg to subscribers of channel (PUBLISH). On Cluster, go-redis
// would send PUBLISH to a random node and the bus relays it to the others,
// so consecutive messages could overtake each other; publishing on the
// channel's slot master, where go-redis also places subscriptions, keeps one
// publisher's messages in order.
func (r *Redis) Publish(ctx context.Context, channel string, msg []byte) error {
	if err := r.begin(ctx); err != nil {
		return err
	}
	ch := r.k(channel)
	if cc, ok := r.c.(*redis.ClusterClient); ok {
		node, err := cc.MasterForKey(ctx, ch)
		if err != nil {
			return r.wrap(err)
		}
		return r.wrap(node.Publish(ctx, ch, msg).Err())
	}
	return r.wrap(r.c.Publish(ctx, ch, msg).Err())
}

// Subscribe returns once Redis has confirmed the subscription, so a message
// published after Subscribe returns is delivered. The channel closes when
// ctx ends or the engine closes. go-redis reconnects and resubscribes after
// a connection loss; messages published meanwhile are lost (pub/sub is not
// durable). Delivery never blocks the connection reader: a subscriber more
// than subBuffer messages behind loses messages.
func (r *Redis) Subscribe(ctx context.Context, channel string) (<-chan []byte, error) {
	if err := r.begin(ctx); err != nil {
		return nil, err
	}
	ps := r.c.Subscribe(ctx, r.k(channel))
	if _, err := ps.Receive(ctx); err != nil {
		ps.Close()
		return nil, r.wrap(err)
	}
	msgs := ps.Channel(redis.WithChannelSize(subBuffer))
	out := make(chan []byte, subBuffer)
	go func() {
		defer close(out)
		defer ps.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case <-r.done:
				return
			case m, ok := <-msgs:
				if !ok {
					return
				}
				select {
				case out <- []byte(m.Payload):
				default:
				}
			}
		}
	}()
	return out, nil
}
