package engine

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// queueKeys returns the due zset and job hash of queue; both share a hash
// tag so scripts can touch them together on Cluster.
func (r *Redis) queueKeys(queue string) (z, j string) {
	base := queueBase(r.prefix, queue)
	return base + ":z", base + ":j"
}

var enqueueScript = redis.NewScript(`
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[2], 'd:' .. ARGV[1], ARGV[2])
return 1`)

// Enqueue adds or replaces a job (Due in unix ms). Replacing keeps the
// job's attempt counter.
func (r *Redis) Enqueue(ctx context.Context, queue string, job Job) error {
	if err := r.begin(ctx); err != nil {
		return err
	}
	if job.ID == "" {
		return errEmptyJobID
	}
	z, j := r.queueKeys(queue)
	return r.wrap(enqueueScript.Run(ctx, r.c, []string{z, j}, job.ID, job.Data, job.Due.UnixMilli()).Err())
}

var claimScript = redis.NewScript(`
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], ARGV[2], id)
  local a = redis.call('HINCRBY', KEYS[2], 'a:' .. id, 1)
  local d = redis.call('HGET', KEYS[2], 'd:' .. id)
  out[#out + 1] = id
  out[#out + 1] = a
  out[#out + 1] = d or ''
end
return out`)

// Claim leases up to max due jobs in one script: pick by due score, move
// the score to now+lease, bump attempts.
func (r *Redis) Claim(ctx context.Context, queue string, now time.Time, lease time.Duration, max int) ([]Job, error) {
	if err := r.begin(ctx); err != nil || max <= 0 {
		return nil, err
	}
	z, j := r.queueKeys(queue)
	due := now.Add(lease).UnixMilli()
	res, err := claimScript.Run(ctx, r.c, []string{z, j}, now.UnixMilli(), due, max).Slice()
	if err != nil {
		return nil, r.wrap(err)
	}
	if len(res)%3 != 0 {
		return nil, fmt.Errorf("%w: unexpected claim reply of %d items", ErrUnavailable, len(res))
	}
	jobs := make([]Job, 0, len(res)/3)
	for i := 0; i < len(res); i += 3 {
		id, _ := res[i].(string)
		attempts, _ := res[i+1].(int64)
		data, _ := res[i+2].(string)
		jobs = append(jobs, Job{ID: id, Data: []byte(data), Due: time.UnixMilli(due), Attempts: int(attempts)})
	}
	return jobs, nil
}

var ackScript = redis.NewScript(`
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], 'd:' .. ARGV[1], 'a:' .. ARGV[1])
return 1`)

// Ack removes a job; absent jobs are ignored.
func (r *Redis) Ack(ctx context.Context, queue, id string) error {
	if err := r.begin(ctx); err != nil {
		return err
	}
	z, j := r.queueKeys(queue)
	return r.wrap(ackScript.Run(ctx, r.c, []string{z, j}, id).Err())
}

var ackClaimedScript = redis.NewScript(`
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not s or tonumber(s) ~= tonumber(ARGV[2]) then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], 'd:' .. ARGV[1], 'a:' .. ARGV[1])
return 1`)

// AckClaimed implements Engine: one script compares the job's score with
// the lease end and removes it only when they match.
func (r *Redis) AckClaimed(ctx context.Context, queue string, job Job) (bool, error) {
	if err := r.begin(ctx); err != nil {
		return false, err
	}
	z, j := r.queueKeys(queue)
	n, err := ackClaimedScript.Run(ctx, r.c, []string{z, j}, job.ID, job.Due.UnixMilli()).Int()
	return n == 1, r.wrap(err)
}

// QueueLen counts jobs, due or not.
func (r *Redis) QueueLen(ctx context.Context, queue string) (int64, error) {
	if err := r.begin(ctx); err != nil {
		return 0, err
	}
	z, _ := r.queueKeys(queue)
	n, err := r.c.ZCard(ctx, z).Result()
	return n, r.wrap(err)
}

// QueueOldest returns the earliest Due, or the zero time when empty.
func (r *Redis) QueueOldest(ctx context.Context, queue string) (time.Time, error) {
	if err := r.begin(ctx); err != nil {
		return time.Time{}, err
	}
	z, _ := r.queueKeys(queue)
	zs, err := r.c.ZRangeWithScores(ctx, z, 0, 0).Result()
	if err != nil || len(zs) == 0 {
		return time.Time{}, r.wrap(err)
	}
	return time.UnixMilli(int64(zs[0].Score)), nil
}

var claimEnqueueScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur then return {0, cur} end
if tonumber(ARGV[2]) > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[3])
redis.call('HSET', KEYS[3], 'd:' .. ARGV[3], ARGV[4])
return {1}`)

// ClaimAndEnqueue is one Lua script over the claim key and the queue's two
// keys, which must share a hash tag (ErrCrossSlot otherwise, checked before
// contacting Redis so standalone setups catch what Cluster would reject).
func (r *Redis) ClaimAndEnqueue(ctx context.Context, claimKey string, claimVal []byte, ttl time.Duration, queue string, job Job) (bool, []byte, error) {
	if err := r.begin(ctx); err != nil {
		return false, nil, err
	}
	defer r.vers.bump(claimKey)
	if job.ID == "" {
		return false, nil, errEmptyJobID
	}
	ck := r.k(claimKey)
	z, j := r.queueKeys(queue)
	if err := checkSameSlot(ck, z); err != nil {
		return false, nil, err
	}
	res, err := claimEnqueueScript.Run(ctx, r.c, []string{ck, z, j},
		claimVal, px(ttl), job.ID, job.Data, job.Due.UnixMilli()).Slice()
	if err != nil {
		return false, nil, r.wrap(err)
	}
	if len(res) == 0 {
		return false, nil, fmt.Errorf("%w: empty ClaimAndEnqueue reply", ErrUnavailable)
	}
	if n, _ := res[0].(int64); n == 1 {
		return true, nil, nil
	}
	cur := ""
	if len(res) > 1 {
		cur, _ = res[1].(string)
	}
	return false, []byte(cur), nil
}

// Append adds a stream entry with a Redis-generated "<unixms>-<seq>" ID.
func (r *Redis) Append(ctx context.Context, log string, data []byte) (string, error) {
	if err := r.begin(ctx); err != nil {
		return "", err
	}
	defer r.vers.bump(log)
	id, err := r.c.XAdd(ctx, &redis.XAddArgs{Stream: r.k(log), ID: "*", Values: []any{"d", data}}).Result()
	return id, r.wrap(err)
}

// AppendMany adds stream entries in one MULTI/EXEC round trip.
func (r *Redis) AppendMany(ctx context.Context, log string, data ...[]byte) ([]string, error) {
	if len(data) == 0 {
		return nil, nil
	}
	defer r.vers.bump(log)
	if err := r.begin(ctx); err != nil {
		return nil, err
	}
	key := r.k(log)
	cmds := make([]*redis.StringCmd, len(data))
	_, err := r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for i, d := range data {
			cmds[i] = p.XAdd(ctx, &redis.XAddArgs{Stream: key, ID: "*", Values: []any{"d", d}})
		}
		return nil
	})
	if err != nil {
		return nil, r.wrap(err)
	}
	ids := make([]string, len(data))
	for i, c := range cmds {
		ids[i] = c.Val()
	}
	return ids, nil
}

// ReadLog returns up to count (<= 0: all) records after afterID (XRANGE
// with an exclusive start).
func (r *Redis) ReadLog(ctx context.Context, log, afterID string, count int) ([]Record, error) {
	if err := r.begin(ctx); err != nil {
		return nil, err
	}
	start := "-"
	if afterID != "" {
		if _, _, ok := parseID(afterID); !ok {
			return nil, fmt.Errorf("engine: invalid log ID %q", afterID)
		}
		start = "(" + afterID
	}
	var msgs []redis.XMessage
	var err error
	if count > 0 {
		msgs, err = r.c.XRangeN(ctx, r.k(log), start, "+", int64(count)).Result()
	} else {
		msgs, err = r.c.XRange(ctx, r.k(log), start, "+").Result()
	}
	if err != nil {
		return nil, r.wrap(err)
	}
	out := make([]Record, len(msgs))
	for i, m := range msgs {
		d, _ := m.Values["d"].(string)
		out[i] = Record{ID: m.ID, Data: []byte(d)}
	}
	return out, nil
}

// LogLen counts records (XLEN).
func (r *Redis) LogLen(ctx context.Context, log string) (int64, error) {
	if err := r.begin(ctx); err != nil {
		return 0, err
	}
	n, err := r.c.XLen(ctx, r.k(log)).Result()
	return n, r.wrap(err)
}

// TrimLog drops records older than before (exact XTRIM MINID).
func (r *Redis) TrimLog(ctx context.Context, log string, before time.Time) error {
	if err := r.begin(ctx); err != nil {
		return err
	}
	defer r.vers.bump(log)
	minMs := before.UnixMilli()
	if minMs <= 0 {
		return nil
	}
	return r.wrap(r.c.XTrimMinID(ctx, r.k(log), strconv.FormatInt(minMs, 10)).Err())
}
